"""The `Gateway`: owns the upstream connections, the catalogue, the pipeline, observers and client sessions.

It is transport-neutral: the HTTP app, `bastion stdio` and the in-memory test transport all open sessions here.
Data flows one way: transport -> session -> pipeline -> routing -> upstream, and back in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from bastion.auth.principal import ANONYMOUS, Principal, binding_of
from bastion.config.model import BastionConfig
from bastion.errors import BastionError, RateLimited
from bastion.fair_limits import FairLimits
from bastion.pipeline.approvals import ApprovalQueue
from bastion.pipeline.chain import Pipeline
from bastion.pipeline.exchange import Asker, Exchange, SessionInfo
from bastion.pipeline.notice import Notice, NoticeKind, NoticeObserver
from bastion.pipeline.stage import ExchangeObserver, Stage
from bastion.protocol.methods import LIST_CHANGED
from bastion.routing.capabilities import CapabilityNeeds
from bastion.routing.catalog import Catalog
from bastion.routing.parked import ParkingLot
from bastion.session import DownstreamSession
from bastion.session_seal import SealedState, SessionSealer
from bastion.transports.base import ClientTransport, JsonDict, Outbound
from bastion.upstream.association import RULES, Call, Isolation, Kind, Listener, audience, kind_of
from bastion.upstream.connection import State, UpstreamConnection
from bastion.upstream.eras import HandshakeTwins
from bastion.upstream.factory import transport_factory
from bastion.upstream.health import ProtocolErrorReporter
from bastion.upstream.pool import UpstreamPool

if TYPE_CHECKING:
    from bastion.cluster.member import ClusterMember
    from bastion.guard.channels import ChannelGuard

logger = logging.getLogger("bastion.gateway")

ListFilter = Callable[[Principal, str, list[JsonDict]], list[JsonDict]]
"""(principal, list method, merged items) -> the items that principal may see."""


class Gateway:
    """One running Bastion: everything a transport needs to serve MCP clients."""

    def __init__(
        self,
        config: BastionConfig,
        *,
        stages: Sequence[Stage] = (),
        observers: Sequence[ExchangeObserver] = (),
        transports: dict[str, Callable[[], ClientTransport]] | None = None,
    ) -> None:
        """Build a gateway.

        Args:
            config: The validated configuration.
            stages: Pipeline stages in their fixed order (authenticate, authorize, rate-limit, validate, guard).
            observers: Exchange observers (audit first, then metrics); they see every exchange.
            transports: Client transport factories by server name, overriding the configured transport
                (tests use this to plug in-process upstreams).
        """
        self.config = config
        self.pipeline = Pipeline(stages)
        self.observers: list[ExchangeObserver] = list(observers)
        self.upstreams: dict[str, UpstreamConnection] = {}
        self._http_clients: list[Any] = []
        for name, server in config.servers.items():
            if not server.enabled:
                continue
            factory = (transports or {}).get(name) or transport_factory(
                name,
                server,
                on_invalid=ProtocolErrorReporter(name, self.emit),
                http_client=self._pooled_http_client(server),
            )
            self.upstreams[name] = UpstreamConnection(
                name,
                server,
                factory,
                on_notification=self._on_upstream_notice,
                on_state=self._on_upstream_state,
            )
        self.twins = HandshakeTwins(self._on_upstream_notice)
        """Handshake-era connections to dual-era upstreams, for handshake-era clients (`upstream/eras.py`)."""
        self.catalog = Catalog(
            self.upstreams, namespace=config.routing.namespace, ttl_seconds=config.routing.list_cache_seconds
        )
        self.pool = UpstreamPool(
            self.upstreams,
            on_notification=self._on_upstream_notice,
            tool_screen=lambda: self.catalog.tool_screen,
            twins=self.twins,
        )
        """Connections scoped to a session or a principal (`servers.<name>.isolation`)."""
        self.needs = CapabilityNeeds({n: s.client_capabilities for n, s in config.servers.items()})
        """What needs which client capability, for capability-aware lists."""
        self.sessions: dict[str, DownstreamSession] = {}
        secret = config.cluster.session_secret
        self.sealer = (
            SessionSealer(secret.get_secret_value(), max_age_seconds=config.cluster.session_max_age_seconds)
            if secret is not None
            else None
        )
        self.parking = ParkingLot()
        self.fair = FairLimits(config.limits)
        """Per-principal session caps and session-opening rates (per principal, per client address)."""
        self.approvals = ApprovalQueue()
        self.cluster: ClusterMember | None = None
        """This replica's part in a cluster: the session registry (who holds which session, terminated ids)."""
        self.started_at = time.time()
        self._reaper: asyncio.Task[None] | None = None
        self.list_filter: ListFilter | None = None
        """Hides list items the session's principal may not see (set from the policy in force)."""
        self.startup: list[Callable[[], Awaitable[Any]]] = []
        """Run at start, before upstreams connect (open stores, start watchers)."""
        self.closers: list[Callable[[], Awaitable[Any]]] = []
        """Run at close, after upstreams, in reverse order (flush audit, close stores)."""
        self.session_listeners: list[Callable[[str, DownstreamSession], Any]] = []
        self.notice_observers: list[NoticeObserver] = []
        """Notice observers besides `observers` that have an `on_notice` hook (the dashboard feed, alerts)."""
        self._notice_tasks: set[asyncio.Task[None]] = set()
        self._listed: dict[str, bool] = {}
        """Whether each upstream's items were in the lists when clients were last told (one list_changed per flip)."""
        self.channel_guard: ChannelGuard | None = None
        """Guardrails on errors, relayed requests, notifications, instructions and list entries (set by
        `Guardrails.attach`); None lets them through unexamined."""

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> None:
        """Connect to every upstream (in the background) and, by default, wait until they are ready or timed out."""
        for hook in self.startup:
            await hook()
        for conn in self.upstreams.values():
            await conn.start()
        self._reaper = asyncio.create_task(self._reap_idle_sessions())
        if wait:
            await self.wait_upstreams()

    async def wait_upstreams(self) -> None:
        """Wait until every upstream connected or its connect timeout passed (warning about the ones that did not)."""
        if not self.upstreams:
            return
        timeout = max(c.config.connect_timeout_seconds for c in self.upstreams.values())
        await asyncio.gather(*(c.wait_ready(timeout) for c in self.upstreams.values()))
        for name, conn in self.upstreams.items():
            if conn.state is not State.READY:
                logger.warning(
                    "upstream %s is not ready yet (%s); it will join when it connects",
                    name,
                    conn.last_error or conn.state,
                )

    async def aclose(self) -> None:
        """Close every session, then every upstream (child processes are terminated)."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for session in list(self.sessions.values()):
            await session.aclose()
        self.parking.close()
        await self.pool.aclose()
        await asyncio.gather(*(c.aclose() for c in self.upstreams.values()), return_exceptions=True)
        for client in self._http_clients:
            await client.aclose()
        await self.twins.aclose()
        if self._notice_tasks:
            await asyncio.gather(*self._notice_tasks, return_exceptions=True)
        for closer in reversed(self.closers):
            try:
                await closer()
            except Exception:  # shutdown continues whatever one resource does
                logger.exception("closing a gateway resource failed")

    def _pooled_http_client(self, server: Any) -> Any:
        """One HTTP client per HTTP server, shared by all its upstream sessions (connections are pooled)."""
        if server.transport == "stdio":
            return None
        from bastion.transports.http_common import build_client

        client = build_client(
            {k: v.get_secret_value() for k, v in server.headers.items()}, server.timeout_seconds
        )
        self._http_clients.append(client)
        return client

    def is_ready(self) -> bool:
        """True when every enabled upstream is connected and its circuit closed."""
        return all(c.available for c in self.upstreams.values())

    def health(self) -> JsonDict:
        """Per-upstream state, for /readyz and the dashboard."""
        return {
            "ready": self.is_ready(),
            "sessions": len(self.sessions),
            **({"cluster": self.cluster.snapshot()} if self.cluster is not None else {}),
            "upstreams": {n: self._describe(n, c) for n, c in self.upstreams.items()},
        }

    def _describe(self, name: str, conn: UpstreamConnection) -> JsonDict:
        """One upstream's state, its isolated connections' calls in flight included."""
        scoped = [c for c in self.pool.connections() if c.name == name]
        out = conn.describe()
        out["inFlight"] += sum(c.describe()["inFlight"] for c in scoped)
        out["isolation"] = str(self.pool.isolation(name))
        out["isolatedConnections"] = len(scoped)
        return out

    # -- sessions ----------------------------------------------------------------------------------------------

    async def open_session(
        self,
        *,
        transport: str,
        outbound: Outbound,
        principal: Principal = ANONYMOUS,
        remote: str = "",
        stateless: bool = False,
    ) -> DownstreamSession:
        """Create a client session; raises `RateLimited` when `limits.max_sessions` is reached."""
        if not stateless and len(self.sessions) >= self.config.limits.max_sessions:
            raise RateLimited("too many sessions", data={"retryAfter": 5})
        if not stateless:
            self.fair.admit(principal.name, remote)
        info = SessionInfo(
            session_id=secrets.token_urlsafe(24), transport=transport, principal=principal, remote=remote
        )
        session = DownstreamSession(self, info, outbound, stateless=stateless)
        if not stateless:
            self.sessions[session.session_id] = session
            self.fair.opened(principal.name)
        return session

    def get_session(self, session_id: str) -> DownstreamSession | None:
        session = self.sessions.get(session_id)
        return None if session is None or session.closed else session

    async def restore_session(
        self, session_id: str, *, transport: str, outbound: Outbound, principal: Principal
    ) -> DownstreamSession | None:
        """Rebuild a session another replica created, from its sealed id; None when it cannot be opened.

        The caller has authenticated `principal`; it must be the sealed principal (no session hijacking).
        """
        if self.sealer is None or (state := self.sealer.open(session_id)) is None:
            return None
        if await self._revoked(session_id):
            return None
        if state.credential != binding_of(principal) or len(self.sessions) >= self.config.limits.max_sessions:
            return None
        info = SessionInfo(
            session_id=session_id,
            transport=transport,
            principal=principal,
            protocol_version=state.protocol_version,
            client_name=state.client_name,
            client_version=state.client_version,
            client_capabilities=state.client_capabilities,
        )
        session = DownstreamSession(self, info, outbound)
        session.restore()
        self.sessions[session_id] = session
        self.fair.opened(principal.name)
        logger.info("session %s restored from its sealed id", session_id[:12])
        for listener in self.session_listeners:
            listener("restore", session)
        return session

    async def _revoked(self, session_id: str) -> bool:
        """Whether a sealed id was terminated (DELETE) on some replica; an unreachable registry counts as yes."""
        if self.cluster is None:
            return False
        try:
            return await self.cluster.registry.is_revoked(session_id)
        except Exception:  # fail closed: without the registry a terminated id cannot be told from a live one
            logger.exception("session registry unavailable; not restoring session %s", session_id[:12])
            return True

    async def close_session(self, session_id: str) -> None:
        session = self.sessions.get(session_id)
        if session is not None:
            await session.aclose()

    def session_started(self, session: DownstreamSession) -> None:
        """Called once a session negotiated its handshake: with a cluster secret, its id becomes sealed state."""
        if self.sealer is not None and not session.stateless:
            info = session.info
            sealed = self.sealer.seal(
                SealedState(
                    principal=info.principal.name,
                    roles=tuple(sorted(info.principal.roles)),
                    method=info.principal.method,
                    protocol_version=info.protocol_version,
                    client_capabilities=info.client_capabilities,
                    client_name=info.client_name,
                    client_version=info.client_version,
                    created=time.time(),
                    credential=binding_of(info.principal),
                )
            )
            self.sessions.pop(session.session_id, None)
            session.session_id = info.session_id = sealed
            self.sessions[sealed] = session
        self.emit_soon(self.session_notice(NoticeKind.SESSION_START, session))
        for listener in self.session_listeners:
            listener("start", session)

    async def session_ended(self, session: DownstreamSession) -> None:
        """Called by a session when it closes: release what it held upstream."""
        if self.sessions.pop(session.session_id, None) is not None:
            self.fair.closed(session.principal_name)
        await self.pool.release_session(session.session_id)
        for uri in session.subscriptions:
            if not any(uri in s.subscriptions for s in self.sessions.values()):
                with contextlib.suppress(BastionError):
                    server = await self.catalog.resolve_uri(uri)
                    # Where it was subscribed: the shared connection (its handshake-era twin), or the
                    # principal's own (the session's own ones are closed with it).
                    if self.pool.isolation(server) is Isolation.SHARED:
                        conns = [await self.twins.for_client(self.upstreams[server], handshake_only=True)]
                    else:
                        conns = [c for c in self.pool.connections_of(session) if c.name == server]
                    for conn in conns:
                        await conn.request("resources/unsubscribe", {"uri": uri})
        # A stateless (2026-07-28 HTTP) session is one request: it had no start notice, so no end notice either.
        if not session.stateless and (session.initialized or session.info.protocol_version):
            await self.emit(self.session_notice(NoticeKind.SESSION_END, session))
        for listener in self.session_listeners:
            listener("end", session)

    async def _reap_idle_sessions(self) -> None:
        idle = self.config.limits.session_idle_seconds
        while True:
            await asyncio.sleep(min(60.0, idle / 2))
            now = time.monotonic()
            # Not a stdio session (its client holds the pipe: a reaped session would ignore it from then on),
            # nor one with calls still running (a long tool call is not idleness).
            expired = [
                s
                for s in self.sessions.values()
                if now - s.last_active > idle and s.info.transport != "stdio" and not s.busy
            ]
            for session in expired:
                logger.info("session %s expired after %.0fs idle", session.session_id[:8], idle)
                await session.aclose()

    # -- what sessions ask of the gateway ----------------------------------------------------------------------

    def warm_twins(self) -> None:
        """A handshake-era client arrived: start the shared handshake-era twins it may need (scoped ones are
        opened with their scope, on first need: `upstream/pool.py`)."""
        self.twins.warm([c for n, c in self.upstreams.items() if self.pool.isolation(n) is Isolation.SHARED])

    def merged_capabilities(self, *, modern: bool = False) -> JsonDict:
        """Server capabilities to advertise: the union over upstreams, with list_changed always on (2026-07-28
        clients hear it on `subscriptions/listen`, which every transport serves)."""
        caps: JsonDict = {
            "tools": {"listChanged": True},
            "prompts": {"listChanged": True},
            "resources": {"listChanged": True},
        }
        ready = [c for c in self.upstreams.values() if c.state is State.READY] or list(
            self.upstreams.values()
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

    def upstream_identities(self) -> list[JsonDict]:
        """Who is behind Bastion (name, the server's own `serverInfo`, its era), for clients' metadata."""
        return [
            {
                "name": name,
                "serverInfo": {
                    k: v for k, v in conn.server_info.items() if k in ("name", "version", "title")
                },
                "protocolVersion": conn.protocol_version,
            }
            for name, conn in self.upstreams.items()
            if conn.state is State.READY
        ]

    def merged_instructions(self) -> str | None:
        """Bastion's own instructions, then each upstream's under a heading (those the guardrails allow)."""
        parts = [self.config.instructions] if self.config.instructions else []
        for name, conn in self.upstreams.items():
            if conn.instructions:
                text: Any = conn.instructions
                if self.channel_guard is not None:
                    screened = self.channel_guard.instructions(name, conn.instructions)
                    notice = screened.notice("instructions", name, "instructions")
                    if notice is not None:
                        self.emit_soon(notice)
                    if not screened.allowed:
                        continue
                    text = screened.payload
                parts.append(f"## {name}\n{text}")
        return "\n\n".join(parts) or None

    async def observe(self, exchange: Exchange) -> None:
        """Hand a finished exchange to every observer; the first failure propagates (strict audit), but only
        after every observer ran, so a refused reply still releases rate-limit slots and is still counted."""
        failure: Exception | None = None
        for observer in self.observers:
            try:
                await observer.on_exchange(exchange)
            except Exception as exc:  # observer boundary: the others must still see the exchange
                failure = failure or exc
        if failure is not None:
            raise failure

    async def screen_channel(
        self, channel: str, server: str | None, payload: Any, what: str
    ) -> tuple[bool, Any]:
        """Whether `payload` may go to a client on `channel` (see `bastion.guard.channels`), and in what form."""
        if self.channel_guard is None:
            return True, payload
        screened = self.channel_guard.screen(channel, server, payload)
        notice = screened.notice(channel, server, what)
        if notice is not None:
            await self.emit(notice)
        return screened.allowed, screened.payload

    async def emit(self, notice: Notice) -> None:
        """Hand a notable event to every notice observer; a failing observer is logged, never raised."""
        targets = [o for o in self.observers if isinstance(o, NoticeObserver)] + self.notice_observers
        for observer in targets:
            try:
                await observer.on_notice(notice)
            except Exception:  # a notice never fails a call or a state change
                logger.exception("notice observer failed on %s", notice.kind)

    def emit_soon(self, notice: Notice) -> None:
        """`emit()` from synchronous code (a callback, a signal handler on the loop): fire and track."""
        task = asyncio.ensure_future(self.emit(notice))
        self._notice_tasks.add(task)
        task.add_done_callback(self._notice_tasks.discard)

    def session_notice(self, kind: NoticeKind, session: DownstreamSession, **detail: Any) -> Notice:
        """A notice about a client session, with its principal and client facts filled in."""
        info = session.info
        return Notice(
            kind=kind,
            session_id=info.session_id,
            principal=info.principal.name,
            roles=tuple(sorted(info.principal.roles)),
            transport=info.transport,
            remote=info.remote,
            detail={
                "client": info.client_name,
                "clientVersion": info.client_version,
                "protocol": info.protocol_version,
                **detail,
            },
        )

    def approval_asker(self, session: DownstreamSession, exchange: Exchange) -> Asker | None:
        """How to ask an operator: the approvals queue (dashboard, admin API; the alert webhook is told)."""

        async def ask(question: str) -> bool:
            return await self.approvals.ask(
                question=question,
                principal=session.info.principal.name,
                server=exchange.server,
                target=exchange.target,
                method=exchange.method,
                session_id=session.session_id,
            )

        return ask

    async def broadcast_upstream(
        self, method: str, params: JsonDict, session: DownstreamSession | None = None
    ) -> None:
        """Send a notification to every ready upstream and handshake-era twin (and `session`'s scoped ones)."""
        conns = [*self.upstreams.values(), *self.twins.live()]
        if session is not None:
            conns += self.pool.connections_of(session)
        for conn in conns:
            await conn.notify(method, params)

    async def set_log_level(self, session: DownstreamSession, level: str) -> None:
        """Apply one session's `logging/setLevel` upstream without changing what other sessions get.

        Scoped connections of the session (its own upstream session, its principal's process) get its level;
        a `shared` connection gets the least severe level any session asked for, and Bastion filters per session.
        """
        from bastion.session import LOG_LEVELS

        wanted = [s.log_level for s in self.sessions.values() if s.wants_logs] or [level]
        lowest = min(wanted, key=LOG_LEVELS.index)
        # A dual-era `shared` upstream hears it on its handshake-era twin (2026-07-28 has no `logging/setLevel`).
        shared = [
            await self.twins.for_client(c, handshake_only=True)
            for n, c in self.upstreams.items()
            if self.pool.isolation(n) is Isolation.SHARED
        ]
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

    async def notify_sessions(
        self, method: str, params: JsonDict | None = None, sessions: Iterable[DownstreamSession] | None = None
    ) -> None:
        """Send a notification to sessions (all by default)."""
        for session in list(sessions if sessions is not None else self.sessions.values()):
            await session.notify(method, params)

    # -- upstream events ---------------------------------------------------------------------------------------

    async def _on_upstream_notice(
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
        sessions = [s for s in self.sessions.values() if not s.closed]
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
                if kind is Kind.LOG:
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

    async def _on_upstream_state(self, conn: UpstreamConnection) -> None:
        # Also called when the circuit opens or closes: either way its tools leave or rejoin the lists.
        if conn.state not in (State.READY, State.DOWN):
            return
        down = not conn.available
        reason = conn.last_error if conn.state is State.DOWN else conn.breaker.reason if down else ""
        await self.emit(
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
            await self.notify_sessions(method)
