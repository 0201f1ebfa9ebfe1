"""The `bastion.yaml` schema (pydantic, edges only). Each section maps 1:1 to a runtime object."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from bastion.audit.config import AuditConfig
from bastion.auth.config import AuthConfig
from bastion.guard.config import GuardrailsConfig
from bastion.policy.config import PolicyConfig
from bastion.state.config import StateConfig
from bastion.telemetry.config import TelemetryConfig
from bastion.upstream.config import ServerConfig as ServerConfig
from bastion.web.config import UIConfig

SERVER_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
"""Lowercase letters, digits and single dashes: `__` can never appear, so `<server>__<tool>` is unambiguous."""


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


class BastionConfig(_Model):
    listen: ListenConfig = Field(default_factory=ListenConfig)
    servers: dict[str, ServerConfig] = Field(default_factory=dict)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig)
    """Detectors and their actions on arguments, results and tool definitions; tool pins (rug pulls)."""
    audit: AuditConfig = Field(default_factory=AuditConfig)
    """The audit trail: strict (replies wait for a durable record) into SQLite by default."""
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    """Prometheus metrics, OpenTelemetry traces and anomaly alerts."""
    ui: UIConfig = Field(default_factory=UIConfig)
    """The operator dashboard (`/ui`) and admin API (`/api`), for principals with the admin role."""
    policy: PolicyConfig | None = None
    """Inline policy (hot-reloaded from this file). Absent and no `policy_file`: no authorization stage."""
    policy_file: str | None = None
    """A separate policy file (its `policy:` section), watched and hot-reloaded."""
    instructions: str | None = None
    """Extra instructions Bastion adds in front of the merged upstream instructions."""
    refusals: Literal["error", "result"] = "result"
    """How a guardrail or policy refusal of a visible tool's `tools/call` is answered: an `isError` result the
    model can read (`result`), or a JSON-RPC error (`error`). Hidden and unknown tools are always errors."""

    @field_validator("servers")
    @classmethod
    def _check_server_names(cls, servers: dict[str, ServerConfig]) -> dict[str, ServerConfig]:
        for name in servers:
            if not SERVER_NAME.fullmatch(name):
                raise ValueError(f"server name {name!r} must be lowercase letters, digits and single dashes")
        return servers

    @model_validator(mode="after")
    def _check_namespace(self) -> BastionConfig:
        if not self.routing.namespace and len([s for s in self.servers.values() if s.enabled]) > 1:
            raise ValueError("routing.namespace: false needs exactly one enabled server")
        return self
