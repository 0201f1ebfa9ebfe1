"""The failure arithmetic of one upstream: its circuit breaker (a plain state machine, no I/O, no clock of its own)
and its reconnect backoff.

Rules:
- CLOSED: calls go through. Each failed call (a timeout or a transport failure, never a tool's own error) counts;
  a success resets the count. `failures` in a row open the circuit.
- OPEN: calls fail fast with `UpstreamUnavailable` naming the reason. After the cool-down the health monitor
  moves it to HALF_OPEN and sends one probe.
- HALF_OPEN: calls still fail fast; only the probe runs. Its success closes the circuit (and resets the
  cool-down); its failure opens it again with the cool-down doubled, up to `max_cooldown_seconds`.
- A success reported while OPEN (a slow call that started before the trip) changes nothing: only a probe
  decides. A fresh connection (reconnect) resets the breaker.
- Every method that changes availability returns True, so the owner can tell clients (list_changed, notice).
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from typing import Any, Final

from bastion.upstream.config import BreakerConfig

TRANSITIONS: Final = {
    ("closed", "failure_threshold"): "open",
    ("open", "cooldown_elapsed"): "half_open",
    ("half_open", "probe_ok"): "closed",
    ("half_open", "probe_failed"): "open",
}
"""The whole state machine, as data (events are named after what the owner observed)."""
BACKOFF_INITIAL: Final = 0.5
"""Seconds before the first reconnect (before jitter)."""
BACKOFF_MAX: Final = 30.0
"""Seconds; the backoff stops doubling here, and a connection that lived this long starts it afresh."""


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Counts consecutive failures of one upstream and decides whether calls may go through."""

    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config or BreakerConfig()
        self.state = CircuitState.CLOSED
        self.failures = 0
        """Failed calls in a row (while closed)."""
        self.reason = ""
        """What the last failure was (`timeout`, `transport`, `probe`): part of the fail-fast error."""
        self.trips = 0
        """How many times the circuit opened since start (for /readyz and the dashboard)."""
        self._opened_at = 0.0
        self._cooldown = self.config.cooldown_seconds

    @property
    def closed(self) -> bool:
        """True when calls may go through."""
        return self.state is CircuitState.CLOSED

    def _move(self, event: str) -> None:
        self.state = CircuitState(TRANSITIONS[(str(self.state), event)])

    def record_success(self) -> bool:
        """A call (or the probe) succeeded; True when that closed the circuit."""
        if self.state is CircuitState.CLOSED:
            self.failures = 0
            return False
        if self.state is CircuitState.OPEN:
            return False  # only the probe decides
        self._move("probe_ok")
        self.failures = 0
        self.reason = ""
        self._cooldown = self.config.cooldown_seconds
        return True

    def record_failure(self, now: float, reason: str) -> bool:
        """A call (or the probe) failed at monotonic time `now`; True when that opened the circuit."""
        if not self.config.enabled:
            return False
        if self.state is CircuitState.HALF_OPEN:
            self._move("probe_failed")
            self.reason = reason
            self._opened_at = now
            self._cooldown = min(self._cooldown * 2, self.config.max_cooldown_seconds)
            return False  # it was unavailable already
        if self.state is CircuitState.OPEN:
            return False
        self.failures += 1
        self.reason = reason
        if self.failures < self.config.failures:
            return False
        self._move("failure_threshold")
        self._opened_at = now
        self.trips += 1
        return True

    def retry_in(self, now: float) -> float:
        """Seconds until the half-open probe may run (0 when it may run now or the circuit is not open)."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown - now)

    def try_half_open(self, now: float) -> bool:
        """Move an open circuit whose cool-down is over to half-open; True when the probe should run now."""
        if self.state is not CircuitState.OPEN or self.retry_in(now) > 0:
            return False
        self._move("cooldown_elapsed")
        return True

    def reset(self) -> bool:
        """A fresh connection: closed, with nothing counted; True when the circuit was not closed."""
        was_closed = self.state is CircuitState.CLOSED
        self.state = CircuitState.CLOSED
        self.failures = 0
        self.reason = ""
        self._cooldown = self.config.cooldown_seconds
        return not was_closed

    def describe(self, now: float) -> dict[str, Any]:
        """State for /readyz and the dashboard."""
        return {
            "state": str(self.state),
            "failures": self.failures,
            "reason": self.reason,
            "trips": self.trips,
            "retryIn": round(self.retry_in(now), 3),
        }


class Backoff:
    """Reconnect delays: doubling from `initial` up to `maximum`, each scaled by a random factor in [0.5, 1.5) so
    that upstreams that failed together (a host blip) do not all reconnect in lockstep."""

    def __init__(
        self,
        initial: float = BACKOFF_INITIAL,
        maximum: float = BACKOFF_MAX,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._initial = initial
        self._maximum = maximum
        self._rng = rng
        self._delay = initial

    def next(self) -> float:
        """The next delay, in seconds (the one after it doubles)."""
        delay = self._delay * (0.5 + self._rng())
        self._delay = min(self._delay * 2, self._maximum)
        return delay

    def reset(self) -> None:
        """Start afresh (the connection ran for a good while before it failed)."""
        self._delay = self._initial
