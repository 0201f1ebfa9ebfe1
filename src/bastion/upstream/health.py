"""Watching one upstream while it runs: periodic health checks, the breaker's half-open probes, and reports of
output that is not MCP.

Rules:
- One monitor task per upstream, for the life of the connection object; it sleeps while the upstream is not ready.
- A check is `ping` (handshake era) or `server/discover` (2026-07-28, which has no ping). Any answer, even an
  error, means alive; a timeout or a transport failure is a failed check.
- `health.failures` failed checks in a row mark the upstream down: its connection is closed (a child process is
  terminated), calls in flight fail fast, and supervision reconnects with backoff.
- When the circuit is open, the monitor waits out the cool-down, then probes once (half-open): success closes it.
- Invalid upstream output is logged by the transport; here it becomes at most one `PROTOCOL_ERROR` notice per
  `REPORT_WINDOW_SECONDS` per upstream (with a count), so a flooding server cannot flood the audit trail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from bastion.errors import BastionError
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.upstream.breaker import CircuitState

if TYPE_CHECKING:
    from bastion.upstream.connection import UpstreamConnection

logger = logging.getLogger("bastion.upstream")

REPORT_WINDOW_SECONDS: Final = 60.0
"""At most one protocol-error notice per upstream in this many seconds (the rest are counted into the next)."""


class HealthMonitor:
    """The health-check and half-open-probe loop of one upstream connection."""

    def __init__(self, conn: UpstreamConnection) -> None:
        self._conn = conn
        self.wake = asyncio.Event()
        """Set when the circuit changed, so the loop re-plans (e.g. sleeps the cool-down instead)."""
        self.failures = 0
        """Failed checks in a row."""
        self.checks = 0
        """Checks and probes sent so far."""

    async def run(self) -> None:
        """Run until cancelled (by the connection's `aclose`)."""
        conn = self._conn
        health = conn.config.health
        while True:
            self.wake.clear()
            await conn.until_ready()
            breaker = conn.breaker
            if breaker.state is CircuitState.OPEN:
                delay: float | None = breaker.retry_in(time.monotonic())
            elif breaker.state is CircuitState.HALF_OPEN:
                delay = 0.0  # a probe was interrupted: probe again now
            else:
                delay = health.interval_seconds or None
            if await self._sleep(delay) or not conn.ready:
                continue  # woken early or gone down meanwhile: plan again
            half_open = breaker.try_half_open(time.monotonic()) or breaker.state is CircuitState.HALF_OPEN
            if breaker.state is CircuitState.OPEN:
                continue
            ok = await conn.probe(health.timeout_seconds)
            self.checks += 1
            if half_open:
                changed = (
                    breaker.record_success() if ok else breaker.record_failure(time.monotonic(), "probe")
                )
                logger.info("upstream %s: half-open probe %s", conn.name, "succeeded" if ok else "failed")
                if changed:
                    conn.circuit_changed()
            if ok:
                self.failures = 0
                continue
            self.failures += 1
            logger.warning("upstream %s: health check failed (%d in a row)", conn.name, self.failures)
            if self.failures >= health.failures:
                self.failures = 0
                await conn.mark_down(f"{health.failures} health checks failed in a row")

    async def _sleep(self, delay: float | None) -> bool:
        """Sleep `delay` seconds (None: until woken); True when woken early."""
        if delay is not None and delay <= 0:
            return False
        try:
            async with asyncio.timeout(delay):
                await self.wake.wait()
        except TimeoutError:
            return False
        return True


class ProtocolErrorReporter:
    """`on_invalid` hook of an upstream transport: throttled `PROTOCOL_ERROR` notices for its bad output."""

    def __init__(
        self,
        server: str,
        emit: Callable[[Notice], Awaitable[None]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._server = server
        self._emit = emit
        self._clock = clock
        self._last = -REPORT_WINDOW_SECONDS
        self.pending = 0
        """Invalid messages not yet reported in a notice."""
        self.total = 0
        """Invalid messages seen since start."""

    async def __call__(self, exc: BastionError) -> None:
        self.pending += 1
        self.total += 1
        now = self._clock()
        if now - self._last < REPORT_WINDOW_SECONDS:
            return
        self._last = now
        count, self.pending = self.pending, 0
        await self._emit(
            Notice(
                kind=NoticeKind.PROTOCOL_ERROR,
                server=self._server,
                severity="warning",
                detail={"reason": str(exc.reason), "source": "upstream", "count": count},
            )
        )
