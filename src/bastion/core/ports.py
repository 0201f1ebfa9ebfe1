"""The ports: the few small Protocols through which everything outside the core uses it.

The core owns these seams (python-sdk v2 `client/_transport.py`): a client session sees a `SessionHost`, a feature
sees `Ports` (a notifier, the session directory, the upstream directory, the lists) and never the concrete
`Gateway`, so no feature can reach into another's state, and the gateway can change behind them.

Rules:
- A port names only what its users call today; a seam with more than a handful of members is two seams.
- Ports are structural (`typing.Protocol`): the `Gateway` implements them without inheriting from them.
- Nothing here does I/O or imports a feature; the session is known only as a `HostedSession`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from bastion.core.config import GatewayConfig
from bastion.pipeline.approvals import ApprovalQueue
from bastion.pipeline.chain import Pipeline
from bastion.pipeline.exchange import Asker, Exchange, SessionInfo
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.routing.capabilities import CapabilityNeeds
from bastion.routing.catalog import Catalog
from bastion.routing.parked import ParkingLot
from bastion.transports.base import JsonDict, RequestId
from bastion.upstream.connection import UpstreamConnection
from bastion.upstream.pending import Owner
from bastion.upstream.pool import UpstreamPool


class HostedSession(Owner, Protocol):
    """What the core needs of one client session (`DownstreamSession` is the one implementation)."""

    session_id: str
    info: SessionInfo
    last_active: float

    @property
    def stateless(self) -> bool:
        """Whether each request stands alone (no session id was issued)."""
        ...

    @property
    def closed(self) -> bool:
        """Whether the session has ended."""
        ...

    @property
    def initialized(self) -> bool:
        """Whether the client confirmed the handshake."""
        ...

    @property
    def subscriptions(self) -> set[str]:
        """Resource URIs this client subscribed to."""
        ...

    @property
    def wants_logs(self) -> bool:
        """Whether the client asked for log notifications."""
        ...

    @property
    def log_level(self) -> str:
        """The least severe log level this client asked for."""
        ...

    @property
    def busy(self) -> bool:
        """Whether requests of this session are being served (an idle reap must not end it)."""
        ...

    def accepts_log(self, params: JsonDict) -> bool:
        """Whether a `notifications/message` with these params reaches this client."""
        ...

    def restore(self) -> None:
        """Mark a session rebuilt from a sealed id as past its handshake."""
        ...

    async def notify(self, method: str, params: JsonDict | None = None) -> None:
        """Send a notification to the client."""
        ...

    async def relay_notification(self, message: JsonDict, related: RequestId | None) -> None:
        """Send an upstream notification tied to one of the client's requests."""
        ...

    async def aclose(self) -> None:
        """End the session (it calls `SessionHost.session_ended`)."""
        ...


class Notifier(Protocol):
    """Where notable events go (audit, metrics, the dashboard feed, alerts)."""

    async def emit(self, notice: Notice) -> None:
        """Hand a notice to every notice observer; never raises."""
        ...

    def emit_soon(self, notice: Notice) -> None:
        """`emit()` from synchronous code: started now, awaited at close."""
        ...


class Revocations(Protocol):
    """Which sealed session ids were terminated anywhere in the cluster (`cluster.registry.SessionRegistry`)."""

    async def is_revoked(self, session_id: str) -> bool:
        """Whether `session_id` was DELETEd on some replica; raises when the registry is unreachable."""
        ...

    async def revoke(self, session_id: str, principal: str) -> None:
        """Terminate `session_id` for every replica."""
        ...

    async def explain(self, session_id: str, principal: str) -> dict[str, Any] | None:
        """Why a session id is unknown here, for its owner; None when there is nothing to say."""
        ...


class Sessions(Protocol):
    """The live client sessions of this replica, for features that end or count them."""

    @property
    def sessions(self) -> Mapping[str, HostedSession]:
        """Live sessions by id."""
        ...

    async def notify_sessions(
        self, method: str, params: JsonDict | None = None, sessions: Iterable[HostedSession] | None = None
    ) -> None:
        """Send a notification to sessions (all by default)."""
        ...


class Upstreams(Protocol):
    """The configured upstream connections and their readiness."""

    @property
    def upstreams(self) -> Mapping[str, UpstreamConnection]:
        """The shared connection of every enabled upstream, by server name."""
        ...

    def is_ready(self) -> bool:
        """True when every enabled upstream is connected and its circuit closed."""
        ...

    def health(self) -> JsonDict:
        """Per-upstream state (what `/readyz` shows)."""
        ...


class Lists(Protocol):
    """The merged lists clients see: what a feature needs to make them change."""

    def invalidate(self, server: str, method: str | None = None) -> None:
        """Drop the cached lists of one upstream."""
        ...

    def split_name(self, public: str) -> tuple[str, str] | None:
        """`(server, upstream name)` of a client-facing tool or prompt name."""
        ...

    def server_of_uri(self, uri: str) -> str | None:
        """The upstream that listed a resource URI or template."""
        ...


class Ports(Notifier, Sessions, Upstreams, Protocol):
    """All a feature may use of a running gateway."""

    @property
    def config(self) -> GatewayConfig:
        """The validated configuration."""
        ...

    @property
    def approvals(self) -> ApprovalQueue:
        """Calls waiting for an operator."""
        ...

    @property
    def lists(self) -> Lists:
        """The merged lists (the catalogue)."""
        ...


class SessionHost(Notifier, Protocol):
    """Exactly what a `DownstreamSession` uses of the gateway that hosts it."""

    config: GatewayConfig
    pipeline: Pipeline
    parking: ParkingLot

    @property
    def catalog(self) -> Catalog:
        """Names, lists and routes of the upstreams' items."""
        ...

    @property
    def pool(self) -> UpstreamPool:
        """The connection each call uses (its isolation scope)."""
        ...

    @property
    def needs(self) -> CapabilityNeeds:
        """What needs which client capability (capability-aware lists)."""
        ...

    async def observe(self, exchange: Exchange) -> None:
        """Hand a finished exchange to every observer (strict audit raises to withhold the reply)."""
        ...

    def merged_capabilities(self, *, modern: bool = False) -> JsonDict:
        """Server capabilities to advertise."""
        ...

    def upstream_identities(self) -> list[JsonDict]:
        """Who is behind Bastion, for clients' metadata."""
        ...

    def merged_instructions(self) -> str | None:
        """Bastion's instructions, then each upstream's."""
        ...

    def warm_twins(self) -> None:
        """A handshake-era client arrived: start the shared handshake-era twins."""
        ...

    def session_started(self, session: HostedSession) -> None:
        """The session negotiated its handshake (its id may become sealed state)."""
        ...

    async def session_ended(self, session: HostedSession) -> None:
        """The session closed: release what it held upstream."""
        ...

    def session_notice(self, kind: NoticeKind, session: HostedSession, **detail: Any) -> Notice:
        """A notice about a session, with its principal and client facts filled in."""
        ...

    async def screen_channel(
        self, channel: str, server: str | None, payload: Any, what: str
    ) -> tuple[bool, Any]:
        """Whether `payload` may go to a client on `channel`, and in what form."""
        ...

    def approval_asker(self, session: HostedSession, exchange: Exchange) -> Asker | None:
        """How to ask an operator about `exchange`."""
        ...

    async def broadcast_upstream(
        self, method: str, params: JsonDict, session: HostedSession | None = None
    ) -> None:
        """Send a client notification to every upstream (and the session's scoped ones)."""
        ...

    async def set_log_level(self, session: HostedSession, level: str) -> None:
        """Apply one session's `logging/setLevel` upstream."""
        ...


Opener = Callable[[], Awaitable[Any]]
"""Starts a resource (opens a store, starts a watcher)."""
Closer = Callable[[], Awaitable[Any]]
"""Closes a resource (flushes the trail, stops a watcher)."""
