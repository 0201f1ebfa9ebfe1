"""The upstream side of the core: connections, catalogue, pool, and what upstreams tell clients.

It builds one supervised connection per enabled server, the catalogue over them and the pool of scoped
connections, and it routes what upstreams say (notifications, state changes) to exactly the sessions the
association rules name (`upstream/association.py`). It knows sessions only as `HostedSession`s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bastion.core.config import GatewayConfig
from bastion.core.ports import HostedSession, Notifier
from bastion.errors import BastionError
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.protocol.methods import LIST_CHANGED
from bastion.routing.capabilities import CapabilityNeeds
from bastion.routing.catalog import Catalog
from bastion.transports.base import ClientTransport, JsonDict
from bastion.upstream.association import RULES, Call, Isolation, Kind, Listener, audience, kind_of
from bastion.upstream.config import ServerConfig
from bastion.upstream.connection import State, UpstreamConnection
from bastion.upstream.eras import HandshakeTwins
from bastion.upstream.factory import transport_factory
from bastion.upstream.health import ProtocolErrorReporter
from bastion.upstream.pool import UpstreamPool

logger = logging.getLogger("bastion.gateway")

ScreenChannel = Callable[[str, str | None, Any, str], Awaitable[tuple[bool, Any]]]
"""(channel, server, payload, what) -> (allowed, payload as clients get it)."""


class UpstreamSet:
    """Every upstream connection, the catalogue over them, and the delivery of what they send."""

    def __init__(
        self,
        config: GatewayConfig,
        notifier: Notifier,
        *,
        transports: dict[str, Callable[[], ClientTransport]] | None = None,
    ) -> None:
        self._notifier = notifier
        self.connections: dict[str, UpstreamConnection] = {}
        self._http_clients: list[Any] = []
        for name, server in config.servers.items():
            if not server.enabled:
                continue
            factory = (transports or {}).get(name) or transport_factory(
                name,
                server,
                on_invalid=ProtocolErrorReporter(name, notifier.emit),
                http_client=self._pooled_http_client(server),
            )
            self.connections[name] = UpstreamConnection(
                name, server, factory, on_notification=self.on_notice, on_state=self.on_state
            )
        self.twins = HandshakeTwins(self.on_notice)
        """Handshake-era connections to dual-era upstreams, for handshake-era clients (`upstream/eras.py`)."""
        self.catalog = Catalog(
            self.connections,
            namespace=config.routing.namespace,
            ttl_seconds=config.routing.list_cache_seconds,
        )
        self.pool = UpstreamPool(
            self.connections,
            on_notification=self.on_notice,
            listing=lambda: self.catalog.listing,
            twins=self.twins,
        )
        """Connections scoped to a session or a principal (`servers.<name>.isolation`)."""
        self.needs = CapabilityNeeds({n: s.client_capabilities for n, s in config.servers.items()})
        """What needs which client capability, for capability-aware lists."""
        self.sessions: Callable[[], Iterable[HostedSession]] = list
        """The live sessions (the core points this at its session table)."""
        self.screen_channel: ScreenChannel | None = None
        """How a log notification is screened before clients see it (the core's channel screen)."""
        self._listed: dict[str, bool] = {}
        """Whether each upstream's items were in the lists when clients were last told (one list_changed per flip)."""

    def _pooled_http_client(self, server: ServerConfig) -> Any:
        """One HTTP client per HTTP server, shared by all its upstream sessions (connections are pooled)."""
        if server.transport == "stdio":
            return None
        from bastion.transports.http_common import build_client

        client = build_client(
            {k: v.get_secret_value() for k, v in server.headers.items()}, server.timeout_seconds
        )
        self._http_clients.append(client)
        return client

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start supervising every upstream (connecting happens in the background)."""
        for conn in self.connections.values():
            await conn.start()

    async def wait_ready(self) -> None:
        """Wait until every upstream connected or its connect timeout passed (warning about the ones that did not)."""
        if not self.connections:
            return
        timeout = max(c.config.connect_timeout_seconds for c in self.connections.values())
        await asyncio.gather(*(c.wait_ready(timeout) for c in self.connections.values()))
        for name, conn in self.connections.items():
            if conn.state is not State.READY:
                logger.warning(
                    "upstream %s is not ready yet (%s); it will join when it connects",
                    name,
                    conn.last_error or conn.state,
                )

    async def aclose(self) -> None:
        """Close scoped connections, then every upstream (child processes are terminated), then the clients."""
        await self.pool.aclose()
        await asyncio.gather(*(c.aclose() for c in self.connections.values()), return_exceptions=True)
        for client in self._http_clients:
            await client.aclose()
        await self.twins.aclose()

    def is_ready(self) -> bool:
        return all(c.available for c in self.connections.values())

    def describe(self, name: str, conn: UpstreamConnection) -> JsonDict:
        """One upstream's state, its isolated connections' calls in flight included."""
        scoped = [c for c in self.pool.connections() if c.name == name]
        out = conn.describe()
        out["inFlight"] += sum(c.describe()["inFlight"] for c in scoped)
        out["isolation"] = str(self.pool.isolation(name))
        out["isolatedConnections"] = len(scoped)
        return out

    def shared(self) -> list[UpstreamConnection]:
        """The connections every session shares (`isolation: shared`)."""
        return [c for n, c in self.connections.items() if self.pool.isolation(n) is Isolation.SHARED]

    # -- what sessions ask -------------------------------------------------------------------------------------

    def merged_capabilities(self, *, modern: bool = False) -> JsonDict:
        """Server capabilities to advertise: the union over upstreams, with list_changed always on (2026-07-28
        clients hear it on `subscriptions/listen`, which every transport serves)."""
        caps: JsonDict = {
            "tools": {"listChanged": True},
            "prompts": {"listChanged": True},
            "resources": {"listChanged": True},
        }
        ready = [c for c in self.connections.values() if c.state is State.READY] or list(
            self.connections.values()
        )
        # Subscriptions and logging are handshake-era methods (a 2026-07-28 listen subscribes through them too):
        # only an upstream that can serve them in that era counts, so nothing is advertised that cannot be kept.
        handshake = [c for c in ready if self.twins.can_serve(c)] + self.twins.live()
        handshake += [c for c in self.pool.connections() if c.state is State.READY and not c.modern]
        if any((c.capabilities.get("resources") or {}).get("subscribe") for c in handshake):
            caps["resources"]["subscribe"] = True
        if any("completions" in c.capabilities for c in ready):
            caps["completions"] = {}
        if not modern and any("logging" in c.capabilities for c in handshake):
            caps["logging"] = {}
        return caps

    def identities(self) -> list[JsonDict]:
        """Who is behind Bastion (name, the server's own `serverInfo`, its era), for clients' metadata."""
        return [
            {
                "name": name,
                "serverInfo": {
                    k: v for k, v in conn.server_info.items() if k in ("name", "version", "title")
                },
                "protocolVersion": conn.protocol_version,
            }
            for name, conn in self.connections.items()
            if conn.state is State.READY
        ]

    async def broadcast(self, method: str, params: JsonDict, session: HostedSession | None = None) -> None:
        """Send a notification to every ready upstream and handshake-era twin (and `session`'s scoped ones)."""
        conns = [*self.connections.values(), *self.twins.live()]
        if session is not None:
            conns += self.pool.connections_of(session)
        for conn in conns:
            await conn.notify(method, params)

    async def set_log_level(self, session: HostedSession, level: str, lowest: str) -> None:
        """Scoped connections of `session` get `level`; a `shared` one gets `lowest` (the least severe any
        session asked for), and Bastion filters per session."""
        # A dual-era `shared` upstream hears it on its handshake-era twin (2026-07-28 has no `logging/setLevel`).
        shared = [await self.twins.for_client(c, handshake_only=True) for c in self.shared()]
        targets = [(c, lowest) for c in shared] + [(c, level) for c in self.pool.connections_of(session)]
        targets = [
            (c, lv)
            for c, lv in targets
            if c.state is State.READY and "logging" in c.capabilities and not c.modern
        ]
        results = await asyncio.gather(
            *(c.request("logging/setLevel", {"level": lv}) for c, lv in targets), return_exceptions=True
        )
        for (conn, _level), result in zip(targets, results, strict=True):
            if isinstance(result, BaseException):
                logger.warning("upstream %s failed logging/setLevel: %s", conn.name, type(result).__name__)

    async def release(self, session: HostedSession, others: list[HostedSession]) -> None:
        """A session ended: close its scoped connections and drop subscriptions no other session holds."""
        await self.pool.release_session(session.session_id)
        for uri in session.subscriptions:
            if not any(uri in s.subscriptions for s in others):
                with contextlib.suppress(BastionError):
                    server = await self.catalog.resolve_uri(uri)
                    # Where it was subscribed: the shared connection (its handshake-era twin), or the
                    # principal's own (the session's own ones are closed with it).
                    if self.pool.isolation(server) is Isolation.SHARED:
                        conns = [await self.twins.for_client(self.connections[server], handshake_only=True)]
                    else:
                        conns = [c for c in self.pool.connections_of(session) if c.name == server]
                    for conn in conns:
                        await conn.request("resources/unsubscribe", {"uri": uri})

    # -- upstream events ---------------------------------------------------------------------------------------

    async def on_notice(
        self, conn: UpstreamConnection, message: JsonDict, related: Call | None = None
    ) -> None:
        """Deliver an upstream notification to exactly the audience the association rules name."""
        method = message["method"]
        params = message.get("params") or {}
        kind = kind_of(method)
        if kind is None:
            logger.debug("upstream %s sent %s with no client to route it to", conn.name, method)
            return
        if method in LIST_CHANGED:
            self.catalog.invalidate(conn.name, LIST_CHANGED[method])
        sessions = [s for s in self.sessions() if not s.closed]
        listeners = [
            Listener(
                session=s.session_id,
                principal=s.principal_name,
                wants_logs=s.wants_logs,
                subscriptions=frozenset(s.subscriptions),
            )
            for s in sessions
        ]
        uri = params.get("uri")
        targets = audience(
            RULES[(conn.config.transport, conn.scope.isolation, kind)],
            scope=conn.scope,
            related=related,
            in_flight=conn.calls(),
            listeners=listeners,
            uri=uri if isinstance(uri, str) else None,
        )
        by_id: dict[str, Any] = {**conn.owners(), **{s.session_id: s for s in sessions}}
        screened: tuple[bool, Any] | None = None
        for target in targets:
            session = by_id.get(target.session)
            if session is None or (kind is Kind.LOG and not session.accepts_log(params)):
                continue
            if target.related is None:
                # A log is a channel to the model: screened once here (a related one when it is relayed).
                if kind is Kind.LOG and self.screen_channel is not None:
                    screened = screened or await self.screen_channel(
                        "notification", conn.name, params, method
                    )
                    if not screened[0]:
                        return
                    await session.notify(method, screened[1])
                    continue
                await session.notify(method, params)
            else:
                await session.relay_notification(message, target.related)

    async def on_state(self, conn: UpstreamConnection) -> None:
        """An upstream's state or circuit changed: tell observers, and clients when its items join or leave."""
        if conn.state not in (State.READY, State.DOWN):
            return
        down = not conn.available
        reason = conn.last_error if conn.state is State.DOWN else conn.breaker.reason if down else ""
        await self._notifier.emit(
            Notice(
                kind=NoticeKind.UPSTREAM_STATE,
                server=conn.name,
                severity="warning" if down else "info",
                detail={
                    "state": str(conn.state),
                    "circuit": str(conn.breaker.state),
                    "restarts": conn.restarts,
                    "reason": reason,
                    "protocol": conn.protocol_version,
                },
            )
        )
        self.catalog.invalidate(conn.name)
        if self._listed.get(conn.name) is (not down):
            return  # state and circuit changes that leave the lists as they were: nothing to tell clients
        self._listed[conn.name] = not down
        for method in LIST_CHANGED:
            for session in list(self.sessions()):
                await session.notify(method)
