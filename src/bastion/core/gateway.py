"""The `Gateway`: one running Bastion, assembled from the core's parts and the features' contributions.

It is transport-neutral: the HTTP app, `bastion stdio` and the in-memory test transport all open sessions here.
Data flows one way: transport -> session -> pipeline -> routing -> upstream, and back in reverse. The parts it
holds each do one job: `SessionTable` (sessions, caps, sealed ids, expiry), `NoticeBus` (observers, notices),
`UpstreamSet` (connections, catalogue, pool, what upstreams send); its lifecycle is one `AsyncExitStack`.

Rules:
- It implements the ports (`core/ports.py`): a session sees it as a `SessionHost`, a feature as `Ports`.
- Features add to it only through `use(contribution)`, called by the composition root (tests may add one to a
  running gateway); nothing else sets its attributes.
- Resources start in order before the upstreams connect and close in reverse after them; a failing close is
  logged and shutdown goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any

from bastion.core.bus import NoticeBus, session_notice
from bastion.core.config import GatewayConfig
from bastion.core.contribution import Contribution, Resource
from bastion.core.fair_limits import FairLimits
from bastion.core.ports import HostedSession, Revocations
from bastion.core.sealing import SessionSealer
from bastion.core.session import LOG_LEVELS, DownstreamSession
from bastion.core.sessions import SessionTable
from bastion.core.upstreams import UpstreamSet
from bastion.guard.channels import ChannelGuard
from bastion.pipeline.approvals import ApprovalQueue
from bastion.pipeline.chain import Pipeline
from bastion.pipeline.exchange import Asker, Exchange, SessionInfo
from bastion.pipeline.notice import Notice, NoticeKind, NoticeObserver
from bastion.pipeline.stage import ExchangeObserver, Stage
from bastion.routing.capabilities import CapabilityNeeds
from bastion.routing.catalog import Catalog
from bastion.routing.parked import ParkingLot
from bastion.transports.base import ClientTransport, JsonDict, Outbound
from bastion.types import ANONYMOUS, Principal
from bastion.upstream.connection import UpstreamConnection
from bastion.upstream.eras import HandshakeTwins
from bastion.upstream.pool import UpstreamPool

logger = logging.getLogger("bastion.gateway")


class Gateway:
    """One running Bastion: everything a transport needs to serve MCP clients."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        stages: Sequence[Stage] = (),
        observers: Sequence[ExchangeObserver] = (),
        transports: dict[str, Callable[[], ClientTransport]] | None = None,
        approvals: ApprovalQueue | None = None,
    ) -> None:
        """Build a gateway with no features yet (the composition root adds them with `use`).

        Args:
            config: The validated configuration.
            stages: Pipeline stages in their fixed order (tests; the root gives them through `use`).
            observers: Exchange observers (audit first, then metrics); they see every exchange.
            transports: Client transport factories by server name, overriding the configured transport
                (tests use this to plug in-process upstreams).
            approvals: Where held calls wait for an operator (shared across replicas when its store is).
        """
        self.config = config
        self.bus = NoticeBus()
        self.bus.observers.extend(observers)
        self.table: SessionTable[DownstreamSession] = SessionTable(config)
        self.ups = UpstreamSet(config, self.bus, transports=transports)
        self.ups.sessions = lambda: self.table.sessions.values()
        self.ups.screen_channel = self.screen_channel
        self.pipeline = Pipeline(stages)
        # The parts, by the names the ports use (plain attributes: sessions read them on every call).
        self.observers: list[ExchangeObserver] = self.bus.observers
        self.notice_observers: list[NoticeObserver] = self.bus.notice_observers
        self.observe: Callable[[Exchange], Coroutine[Any, Any, None]] = self.bus.observe
        """Hand a finished exchange to every observer (`NoticeBus.observe`; strict audit raises)."""
        self.emit: Callable[[Notice], Coroutine[Any, Any, None]] = self.bus.emit
        """Hand a notable event to every notice observer; never raises."""
        self.emit_soon: Callable[[Notice], None] = self.bus.emit_soon
        """`emit()` from synchronous code: started now, awaited at close."""
        self.sessions: dict[str, DownstreamSession] = self.table.sessions
        self.session_listeners: list[Callable[[str, Any], Any]] = self.table.listeners
        self.sealer: SessionSealer | None = self.table.sealer
        self.fair: FairLimits = self.table.fair
        self.upstreams: dict[str, UpstreamConnection] = self.ups.connections
        self.catalog: Catalog = self.ups.catalog
        self.pool: UpstreamPool = self.ups.pool
        self.needs: CapabilityNeeds = self.ups.needs
        self.twins: HandshakeTwins = self.ups.twins
        self.parking = ParkingLot()
        self.approvals = approvals if approvals is not None else ApprovalQueue()
        self.started_at = time.time()
        self.channel_guard: ChannelGuard | None = None
        """Guardrails on errors, relayed requests, notifications, instructions (from the guard's contribution)."""
        self._resources: list[Resource] = []
        self._health: list[tuple[str, Callable[[], JsonDict]]] = []
        self._reaper: asyncio.Task[None] | None = None
        self._started = False
        self._stack = contextlib.AsyncExitStack()
        """Closes the resources, last opened first, after `_teardown` closed sessions and upstreams."""

    # -- composition -------------------------------------------------------------------------------------------

    def use(self, *contributions: Contribution) -> None:
        """Add features' contributions, in order (see `core/contribution.py` for what each field does).

        The composition root calls this before `start`; a resource added to a gateway that already started is
        closed with it but not opened (tests add observers and tracers to running gateways this way).
        """
        for part in contributions:
            if part.stages or part.tracer is not None:
                self.pipeline = Pipeline(
                    [*self.pipeline.stages, *part.stages], tracer=part.tracer or self.pipeline.tracer
                )
            if part.tracer is not None:
                for conn in self.ups.connections.values():
                    conn.tracer = part.tracer  # type: ignore[assignment]
            self.bus.observers.extend(part.observers)
            self.bus.notice_observers.extend(part.notice_observers)
            self.table.listeners.extend(part.session_listeners)
            self.approvals.listeners.extend(part.approval_listeners)
            if part.listing_stages:
                self.catalog.listing = Pipeline([*self.catalog.listing.stages, *part.listing_stages])
            if part.channel_guard is not None:
                self.channel_guard = part.channel_guard
            if part.revocations is not None:
                self.table.revocations = part.revocations
            self._health.extend(part.health)
            for resource in part.resources:
                self._resources.append(resource)
                if resource.close is not None:
                    self._stack.push_async_callback(_logged(resource.name, resource.close))

    # -- the parts, as the ports name them ---------------------------------------------------------------------

    @property
    def revocations(self) -> Revocations | None:
        """The cluster's terminated session ids (None without a cluster member)."""
        return self.table.revocations

    @property
    def lists(self) -> Catalog:
        """The merged lists, as features see them (`Lists`)."""
        return self.ups.catalog

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> None:
        """Start every resource, connect to every upstream (in the background) and, by default, wait until they
        are ready or timed out."""
        if not self._started:
            self._started = True
            for resource in self._resources:
                if resource.open is not None:
                    await resource.open()
        await self.ups.start()
        self._reaper = asyncio.create_task(self.table.reap_idle())
        if wait:
            await self.wait_upstreams()

    async def wait_upstreams(self) -> None:
        """Wait until every upstream connected or its connect timeout passed."""
        await self.ups.wait_ready()

    async def aclose(self) -> None:
        """Close every session and upstream, then every resource in reverse order of start."""
        try:
            await self._teardown()
        finally:
            await self._stack.aclose()

    async def _teardown(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for session in list(self.sessions.values()):
            await session.aclose()
        self.parking.close()
        await self.ups.aclose()
        await self.bus.drain()

    def is_ready(self) -> bool:
        """True when every enabled upstream is connected and its circuit closed."""
        return self.ups.is_ready()

    def health(self) -> JsonDict:
        """Per-upstream state, for /readyz and the dashboard."""
        return {
            "ready": self.is_ready(),
            "sessions": len(self.sessions),
            **{key: part() for key, part in self._health},
            "upstreams": {n: self.ups.describe(n, c) for n, c in self.upstreams.items()},
        }

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
        """Create a client session; raises `RateLimited` when a session limit is reached."""
        if not stateless:
            self.table.admit(principal, remote)
        info = SessionInfo(
            session_id=self.table.new_id(), transport=transport, principal=principal, remote=remote
        )
        session = DownstreamSession(self, info, outbound, stateless=stateless)
        if not stateless:
            self.table.add(session)
        return session

    def get_session(self, session_id: str) -> DownstreamSession | None:
        return self.table.get(session_id)

    async def restore_session(
        self, session_id: str, *, transport: str, outbound: Outbound, principal: Principal
    ) -> DownstreamSession | None:
        """Rebuild a session another replica created, from its sealed id; None when it cannot be opened.

        The caller has authenticated `principal`; it must be the sealed principal (no session hijacking).
        """
        state = await self.table.unseal(session_id, principal)
        if state is None:
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
        self.table.add(session)
        logger.info("session %s restored from its sealed id", session_id[:12])
        self.table.tell("restore", session)
        return session

    def session_started(self, session: HostedSession) -> None:
        """Called once a session negotiated its handshake: with a cluster secret, its id becomes sealed state."""
        assert isinstance(session, DownstreamSession)
        self.table.seal(session)
        self.emit_soon(self.session_notice(NoticeKind.SESSION_START, session))
        self.table.tell("start", session)

    async def session_ended(self, session: HostedSession) -> None:
        """Called by a session when it closes: release what it held upstream."""
        assert isinstance(session, DownstreamSession)
        self.table.remove(session)
        await self.ups.release(session, list(self.sessions.values()))
        # A stateless (2026-07-28 HTTP) session is one request: it had no start notice, so no end notice either.
        if not session.stateless and (session.initialized or session.info.protocol_version):
            await self.emit(self.session_notice(NoticeKind.SESSION_END, session))
        self.table.tell("end", session)

    async def notify_sessions(
        self, method: str, params: JsonDict | None = None, sessions: Iterable[HostedSession] | None = None
    ) -> None:
        """Send a notification to sessions (all by default)."""
        for session in list(sessions if sessions is not None else self.sessions.values()):
            await session.notify(method, params)

    # -- what sessions ask of the gateway (`SessionHost`) ------------------------------------------------------

    def warm_twins(self) -> None:
        """A handshake-era client arrived: start the shared handshake-era twins it may need (scoped ones are
        opened with their scope, on first need: `upstream/pool.py`)."""
        self.ups.twins.warm(self.ups.shared())

    def merged_capabilities(self, *, modern: bool = False) -> JsonDict:
        """Server capabilities to advertise (`UpstreamSet.merged_capabilities`)."""
        return self.ups.merged_capabilities(modern=modern)

    def upstream_identities(self) -> list[JsonDict]:
        """Who is behind Bastion, for clients' metadata."""
        return self.ups.identities()

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

    def session_notice(self, kind: NoticeKind, session: HostedSession, **detail: Any) -> Notice:
        """A notice about a client session, with its principal and client facts filled in."""
        return session_notice(kind, session, **detail)

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

    def approval_asker(self, session: HostedSession, exchange: Exchange) -> Asker | None:
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
        self, method: str, params: JsonDict, session: HostedSession | None = None
    ) -> None:
        """Send a notification to every ready upstream and handshake-era twin (and `session`'s scoped ones)."""
        await self.ups.broadcast(method, params, session)

    async def set_log_level(self, session: HostedSession, level: str) -> None:
        """Apply one session's `logging/setLevel` upstream without changing what other sessions get.

        Scoped connections of the session (its own upstream session, its principal's process) get its level;
        a `shared` connection gets the least severe level any session asked for, and Bastion filters per session.
        """
        wanted = [s.log_level for s in self.sessions.values() if s.wants_logs] or [level]
        await self.ups.set_log_level(session, level, min(wanted, key=LOG_LEVELS.index))


def _logged(name: str, close: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await close()
        except Exception:
            logger.exception("closing %s failed", name)

    return run
