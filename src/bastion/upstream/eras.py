"""Each client era served by the same era upstream: a handshake-era twin of a dual-era (`protocol: auto`) upstream.

Why: a 2026-07-28 session cannot carry server->client requests, subscriptions or `logging/setLevel`, and a
dual-era server behind it (the conformance fixture, the Python SDK's `MCPServer`) does not turn its in-call
sampling or elicitation into `input_required` rounds: it just fails them. A handshake-era client behind such a
server would lose those features. So when the primary connection of an `auto` upstream came up in 2026-07-28,
handshake-era clients are routed to a second connection that speaks the handshake era, where every feature maps
one to one. A server that refuses the handshake (modern-only) keeps the bridged path (`input_required` rounds
turned into requests to the client) for good.

Rules:
- Only calls that need the handshake era go to the twin: those of a handshake-era client that declared sampling,
  elicitation or roots (the server may ask it mid-call), and the methods 2026-07-28 removed (`resources/subscribe`,
  `resources/unsubscribe`, `logging/setLevel`). Everything else stays on the primary, so a twin is made only when
  some client can use it.
- The twin is made on first need (such a session initializing warms it) from the primary's own transport factory
  and config, with `protocol: legacy`; it is supervised like any connection and closed with the gateway.
- Lists and list_changed come from the primary (one catalogue, one notification); the twin relays only what is
  per-session: resource updates and log messages.
- 2026-07-28 clients, handshake-era upstreams and `legacy`/`modern` upstreams are served by the primary as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

from bastion.protocol.methods import LIST_CHANGED
from bastion.types import JsonDict
from bastion.upstream.association import Call
from bastion.upstream.connection import ConnectionListener, State, UpstreamConnection

logger = logging.getLogger("bastion.upstream.eras")

TWIN_READY_SECONDS: Final = 30.0
"""Upper bound on waiting for a twin's handshake at a first call (its own `connect_timeout_seconds` if lower)."""


class HandshakeTwins:
    """The handshake-era twins of dual-era upstreams, made on demand."""

    def __init__(self, relay: ConnectionListener) -> None:
        self._relay = relay
        self._twins: dict[str, UpstreamConnection] = {}
        self._refused: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._starting: set[asyncio.Task[UpstreamConnection]] = set()

    @staticmethod
    def wanted(conn: UpstreamConnection) -> bool:
        """Whether handshake-era clients of `conn` need a twin (an `auto` upstream that answered 2026-07-28)."""
        return conn.modern and conn.config.protocol == "auto"

    def can_serve(self, conn: UpstreamConnection) -> bool:
        """Whether handshake-era clients get handshake-era features from `conn` (itself, or a twin that may work)."""
        return not conn.modern or (self.wanted(conn) and conn.name not in self._refused)

    def refuse(self, name: str) -> None:
        """Upstream `name` does not speak the handshake era: its handshake-era clients are bridged from now on."""
        self._refused.add(name)

    def live(self) -> list[UpstreamConnection]:
        """The twins that are ready now (for broadcasts a handshake-era client triggers)."""
        return [t for t in self._twins.values() if t.state is State.READY]

    def of(self, name: str) -> UpstreamConnection | None:
        """The twin of upstream `name`, if one was made."""
        return self._twins.get(name)

    def warm(self, upstreams: list[UpstreamConnection]) -> None:
        """Start the twins a handshake-era client will need, in the background (no call waits on them yet)."""
        for conn in upstreams:
            if self.wanted(conn) and conn.name not in self._twins and conn.name not in self._refused:
                task = asyncio.ensure_future(self._twin(conn))
                self._starting.add(task)
                task.add_done_callback(self._starting.discard)

    async def for_client(self, conn: UpstreamConnection, *, handshake_only: bool) -> UpstreamConnection:
        """The connection for a call: the twin when the call needs the handshake era and `conn` has one."""
        if not handshake_only or not self.wanted(conn) or conn.name in self._refused:
            return conn
        twin = await self._twin(conn)
        if twin.state is State.READY:
            return twin
        if await twin.wait_ready(min(TWIN_READY_SECONDS, twin.config.connect_timeout_seconds)):
            return twin
        # It does not speak the handshake era (or not now): the bridged path keeps what can be kept.
        logger.warning(
            "upstream %s: no handshake-era session (%s); bridging handshake-era clients over 2026-07-28",
            conn.name,
            twin.last_error or twin.state,
        )
        self.refuse(conn.name)
        if self._twins.pop(conn.name, None) is twin:
            await twin.aclose()
        return conn

    async def _twin(self, conn: UpstreamConnection) -> UpstreamConnection:
        lock = self._locks.setdefault(conn.name, asyncio.Lock())
        async with lock:
            twin = self._twins.get(conn.name)
            if twin is None:
                config = conn.config.model_copy(update={"protocol": "legacy"})
                twin = UpstreamConnection(
                    conn.name, config, conn.transport_factory, on_notification=self._notice
                )
                self._twins[conn.name] = twin
                await twin.start()
            return twin

    async def _notice(self, conn: UpstreamConnection, message: JsonDict, related: Call | None = None) -> None:
        if message.get("method") not in LIST_CHANGED:  # the primary's listen stream reports list changes
            await self._relay(conn, message, related)

    async def aclose(self) -> None:
        """Close every twin (their child processes end)."""
        if self._starting:
            await asyncio.wait(list(self._starting))
        twins, self._twins = list(self._twins.values()), {}
        for twin in twins:
            with contextlib.suppress(Exception):
                await twin.aclose()
