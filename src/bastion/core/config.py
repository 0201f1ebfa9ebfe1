"""The settings the core reads, and `GatewayConfig`, the view of the whole configuration it is typed against.

`bastion.config.BastionConfig` aggregates every feature's section, so it sits at the top with the composition
root; the core sits below the features and may not import it. The sections the core itself needs (listen,
routing, limits, cluster) live here and are re-exported by `bastion.config.model`; `BastionConfig` satisfies
`GatewayConfig` structurally, and a feature that needs its own section is given it by the composition root.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bastion.upstream.config import ServerConfig


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ListenConfig(_Model):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    allowed_hosts: list[str] = Field(default_factory=list)
    """Extra Host header values accepted besides the listen address and localhost (DNS-rebinding defence)."""
    allowed_origins: list[str] = Field(default_factory=list)
    """Origins allowed to call the MCP endpoints from a browser; loopback origins are always allowed."""


class RoutingConfig(_Model):
    namespace: bool = True
    """Prefix tool and prompt names with `<server>__`. Off only makes sense with exactly one server."""
    list_cache_seconds: float = Field(default=300.0, ge=0)
    """How long an upstream's list results are cached (list_changed refreshes them sooner)."""
    capability_aware_lists: bool = True
    """Leave out of a client's lists what needs a client capability it did not declare (`routing/capabilities.py`)."""


class LimitsConfig(_Model):
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    max_depth: int = Field(default=64, gt=0)
    max_sessions: int = Field(default=10_000, gt=0)
    max_sessions_per_principal: int = Field(default=256, gt=0)
    """Sessions one principal may hold at once on a replica, so no key can take `max_sessions` from others."""
    initialize_per_minute_per_principal: int = Field(default=120, gt=0)
    """Sessions one principal may open per minute (also the burst), per replica."""
    initialize_per_minute_per_address: int = Field(default=240, gt=0)
    """Sessions one client address may open per minute (also the burst), whoever authenticates, per replica."""
    max_concurrent_per_session: int = Field(default=64, gt=0)
    session_idle_seconds: float = Field(default=3600.0, gt=0)
    event_buffer: int = Field(default=256, gt=0)
    """SSE events kept per session for `Last-Event-ID` resumption."""
    shutdown_grace_seconds: float = Field(default=10.0, ge=0)
    """On SIGTERM: how long calls in flight may take to finish before they are cancelled and upstreams closed."""
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long an HTTP client may take to send a request's headers (slowloris) before it is disconnected."""
    keep_alive_seconds: float = Field(default=75.0, gt=0)
    """How long an idle HTTP keep-alive connection stays open. Longer than the idle expiry of common clients
    (httpx 5 s) and load balancers (nginx 60 s): when both sides time out together, a request sent on a connection
    the server is closing fails with a connection reset, so the client must always be the one to give up first."""


class ClusterConfig(_Model):
    """Running several replicas behind a load balancer."""

    replica_id: str = ""
    """This replica's name (audit chain id, metrics); defaults to the host name."""
    session_secret: SecretStr | None = None
    """Shared by every replica: session ids become sealed state any replica can open (see core/sealing.py)."""
    session_max_age_seconds: float = Field(default=86400.0, gt=0)


def default_replica() -> str:
    """This replica's name when `cluster.replica_id` is empty: the host name."""
    return socket.gethostname() or "bastion"


class GatewayConfig(Protocol):
    """What the core (and a feature through `Ports.config`) reads of the configuration; `BastionConfig` is one."""

    @property
    def listen(self) -> ListenConfig:
        """Where the server listens and which hosts and origins it accepts."""
        ...

    @property
    def servers(self) -> Mapping[str, ServerConfig]:
        """The upstream servers by name."""
        ...

    @property
    def routing(self) -> RoutingConfig:
        """Namespacing and list caching."""
        ...

    @property
    def limits(self) -> LimitsConfig:
        """Sizes, counts and timeouts."""
        ...

    @property
    def cluster(self) -> ClusterConfig:
        """This replica among others."""
        ...

    @property
    def instructions(self) -> str | None:
        """Extra instructions in front of the merged upstream instructions."""
        ...

    @property
    def refusals(self) -> Literal["error", "result"]:
        """How a refusal of a visible tool's `tools/call` is answered."""
        ...
