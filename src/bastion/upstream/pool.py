"""`UpstreamPool`: the upstream connection a client call uses, chosen by the server's isolation scope.

Rules:
- `shared`: every call uses the server's one base connection (the one that also serves lists and health).
- `session` (HTTP default): one upstream MCP session per downstream session, opened on its first call and closed
  when that session ends. HTTP connections are pooled: every upstream session of a server shares one HTTP client.
  A stateless 2026-07-28 client request has no session to scope by: it uses its principal's scope instead (one
  upstream session per principal), never a fresh upstream session per request. A 2026-07-28 HTTP upstream has
  no sessions: each request carries its own context and server->client requests
  come back inside its own result (`input_required`), so association is exact on the base connection itself.
- `principal` (stdio default): one supervised process per principal, started on its first call, reaped after
  `idle_seconds` without calls; at `max_processes` live scoped connections of a server, a new principal is
  refused with a clear error (`UpstreamBusy`), never given someone else's process.
- A scoped connection's own tool list is fetched before its first call (a 2026-07-28 transport learns its
  `Mcp-Param-*` headers from it) and passes the pins check (the catalogue's tool screen): a tool the screen holds
  cannot be called on it, whatever the base connection's list says.
- A scoped connection that cannot connect fails the call with the upstream's reason and is dropped, so the next
  call tries afresh; one that went down later is replaced on its scope's next call. While the server's base
  connection is unavailable (down, circuit open), calls fail fast on it with its reason.
- Handshake-era twins (`eras.py`) follow the scope: a call that needs the handshake era on a dual-era server whose
  base connection speaks 2026-07-28 gets the server's one shared twin under `shared`, and under `session` or
  `principal` a handshake-era connection of its own scope (`protocol: legacy`, keyed apart from the scope's
  2026-07-28 one), so neither isolation nor the handshake-era features are given up. A server that refuses the
  handshake era is marked so (`HandshakeTwins.refuse`) and the call keeps its scope's 2026-07-28 connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from bastion.errors import RateLimited, UpstreamUnavailable
from bastion.pipeline.chain import Pipeline
from bastion.pipeline.stages.listing import screen_listing
from bastion.types import JsonDict
from bastion.upstream.association import Isolation, Scope
from bastion.upstream.connection import ConnectionListener, UpstreamConnection
from bastion.upstream.pending import Owner

if TYPE_CHECKING:
    from bastion.upstream.eras import HandshakeTwins

logger = logging.getLogger("bastion.upstream.pool")

MAX_PAGES: Final = 100
"""Pages of a scoped connection's tool list fetched at most (as the catalogue does)."""
REAP_INTERVAL_SECONDS: Final = 1.0
"""How often idle scoped connections are looked for (the reap itself happens after `idle_seconds`)."""


@dataclass(slots=True)
class _Entry:
    conn: UpstreamConnection
    scope: Scope
    last_used: float = field(default_factory=time.monotonic)
    ready: asyncio.Future[None] | None = None


class UpstreamPool:
    """Scoped upstream connections of every server, keyed by (server, scope key)."""

    def __init__(
        self,
        base: dict[str, UpstreamConnection],
        *,
        on_notification: ConnectionListener,
        listing: Callable[[], Pipeline] = Pipeline,
        twins: HandshakeTwins | None = None,
    ) -> None:
        """Build the pool.

        Args:
            base: The servers' base connections (lists, health, `shared` calls); scoped connections of a server
                are built from its base connection's transport factory.
            on_notification: Told of notifications for sessions from any scoped connection.
            listing: The listing chain in force (read at each connection's start): a scoped connection's own tool
                list goes through it, and only the tools it keeps may be called there.
            twins: The servers' shared handshake-era twins (what a `shared` call needing that era uses).
        """
        self._base = base
        self._on_notification = on_notification
        self._listing = listing
        self._twins = twins
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._reaper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Future[Any]] = set()

    def isolation(self, server: str) -> Isolation:
        return self._base[server].isolation

    def connections(self) -> list[UpstreamConnection]:
        """Every live scoped connection (drain on shutdown, metrics, the bench)."""
        return [e.conn for e in self._entries.values()]

    def connections_of(self, owner: Owner) -> list[UpstreamConnection]:
        """The live scoped connections that serve `owner` (its own session's, its principal's)."""
        return [
            e.conn
            for e in self._entries.values()
            if (e.scope.isolation is Isolation.SESSION and e.scope.session == owner.session_id)
            or (e.scope.isolation is Isolation.PRINCIPAL and e.scope.principal == owner.principal_name)
        ]

    def count(self, server: str) -> int:
        return sum(1 for key in self._entries if key[0] == server)

    async def acquire(self, server: str, owner: Owner, *, handshake_only: bool = False) -> UpstreamConnection:
        """The connection `owner`'s call to `server` must use (started and screened on first use).

        Args:
            handshake_only: The call needs a handshake-era upstream session (`eras.py`).

        Raises:
            RateLimited: `max_processes` scoped connections of this server are live already.
            UpstreamUnavailable: the scoped connection could not be opened.
        """
        base = self._base[server]
        isolation = base.isolation
        if isolation is Isolation.SHARED and self._twins is not None:
            return await self._twins.for_client(base, handshake_only=handshake_only)
        if isolation is Isolation.SHARED or not base.available:
            return base  # not available: its request() fails fast with the reason (down, circuit open)
        twins = self._twins
        if handshake_only and twins is not None and twins.wanted(base) and twins.can_serve(base):
            try:
                return await self._scoped(server, owner, isolation, handshake=True)
            except UpstreamUnavailable as exc:
                # It does not speak the handshake era (or not now): the scope's 2026-07-28 connection bridges.
                logger.warning("upstream %s: no handshake-era session (%s); bridging", server, exc.message)
                twins.refuse(server)
        if isolation is Isolation.SESSION and base.modern and base.config.transport != "stdio":
            return base
        return await self._scoped(server, owner, isolation, handshake=False)

    async def _scoped(
        self, server: str, owner: Owner, isolation: Isolation, *, handshake: bool
    ) -> UpstreamConnection:
        base = self._base[server]
        if isolation is Isolation.SESSION and getattr(owner, "stateless", False):
            isolation = Isolation.PRINCIPAL
        key = owner.session_id if isolation is Isolation.SESSION else f"principal:{owner.principal_name}"
        key += "|handshake" if handshake else ""
        entry = self._entries.get((server, key))
        if entry is not None and entry.ready is not None and entry.ready.done() and not entry.conn.ready:
            await self._close([(server, key)])  # it went down (crash, session lost): start afresh
            entry = None
        if entry is None:
            limit = base.config.max_processes
            if self.count(server) >= limit:
                raise RateLimited(
                    f"server {server} has {limit} isolated connections open; try again later",
                    data={"server": server, "limit": limit, "retryAfter": 5, "isolation": str(isolation)},
                )
            share = base.config.max_processes_per_principal
            held = sum(
                1
                for k, e in self._entries.items()
                if k[0] == server and e.scope.principal == owner.principal_name
            )
            if share is not None and held >= share:
                raise RateLimited(
                    f"server {server}: this principal holds {share} isolated connections already; "
                    "close a session or try again later",
                    data={"server": server, "limit": share, "retryAfter": 5, "isolation": str(isolation)},
                )
            scope = Scope(isolation=isolation, session=owner.session_id, principal=owner.principal_name)
            if isolation is Isolation.PRINCIPAL:
                scope = Scope(isolation=isolation, principal=owner.principal_name)
            config = base.config.model_copy(update={"protocol": "legacy"}) if handshake else base.config
            conn = UpstreamConnection(
                server,
                config,
                base.transport_factory,
                on_notification=self._on_notification,
                scope=scope,
                scope_owner=owner if isolation is Isolation.SESSION else None,
            )
            conn.tracer = base.tracer
            entry = _Entry(conn=conn, scope=scope)
            entry.ready = asyncio.ensure_future(self._open(server, key, entry, owner))
            self._entries[(server, key)] = entry
            self._ensure_reaper()
        entry.last_used = time.monotonic()
        assert entry.ready is not None
        await asyncio.shield(entry.ready)
        return entry.conn

    async def _open(self, server: str, key: str, entry: _Entry, owner: Owner) -> None:
        conn = entry.conn
        try:
            await conn.start()
            if not await conn.wait_ready(conn.config.connect_timeout_seconds):
                raise UpstreamUnavailable(
                    f"server {server} is unavailable: {conn.last_error or 'not ready'}",
                    data={"server": server},
                )
            await self._screen(server, conn)
            level = getattr(owner, "log_level", None) if getattr(owner, "wants_logs", False) else None
            if level is not None and "logging" in conn.capabilities:
                await conn.request("logging/setLevel", {"level": level})
        except BaseException:
            self._entries.pop((server, key), None)
            await conn.aclose()
            raise
        logger.info("upstream %s: opened a %s-scoped connection", server, entry.scope.isolation)

    async def _screen(self, server: str, conn: UpstreamConnection) -> None:
        if "tools" not in conn.capabilities:
            return
        items: list[JsonDict] = []
        cursor: object = None
        for _ in range(MAX_PAGES):
            reply = await conn.request("tools/list", {} if cursor is None else {"cursor": cursor})
            result = reply.get("result")
            page = result.get("tools") if isinstance(result, dict) else None
            items += [t for t in page if isinstance(t, dict)] if isinstance(page, list) else []
            cursor = result.get("nextCursor") if isinstance(result, dict) else None
            if cursor is None:
                break
        listing = self._listing()
        if not listing:
            return
        kept = await screen_listing(listing, server, "tools/list", items)
        conn.allowed_tools = frozenset(str(t["name"]) for t in kept if "name" in t)

    async def release_session(self, session_id: str) -> None:
        """The downstream session ended: close its `session`-scoped connections."""
        keys = [
            k
            for k, e in self._entries.items()
            if e.scope.isolation is Isolation.SESSION and e.scope.session == session_id
        ]
        await self._close(keys)

    async def _close(self, keys: list[tuple[str, str]]) -> None:
        entries = [e for k in keys if (e := self._entries.pop(k, None)) is not None]
        if not entries:
            return
        # Its own task: a session that ends inside a cancelled scope must still close what it held.
        closing = asyncio.ensure_future(
            asyncio.gather(*(e.conn.aclose() for e in entries), return_exceptions=True)
        )
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        await asyncio.shield(closing)

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap(), name="upstream-pool-reaper")

    async def _reap(self) -> None:
        while self._entries:
            await asyncio.sleep(REAP_INTERVAL_SECONDS)
            now = time.monotonic()
            idle = [
                k
                for k, e in self._entries.items()
                if not e.conn.busy
                and e.ready is not None
                and e.ready.done()
                and now - max(e.last_used, e.conn.last_call_end) > self._base[k[0]].config.idle_seconds
            ]
            if idle:
                logger.info("upstream pool: reaping %d idle connection(s)", len(idle))
                await self._close(idle)

    async def aclose(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self._close(list(self._entries))
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
