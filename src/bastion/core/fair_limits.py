"""`FairLimits`: no principal, and no client address, can take the gateway's shared session capacity from others.

Rules:
- A principal holds at most `limits.max_sessions_per_principal` sessions at once on a replica (below the global
  `limits.max_sessions`), so one key opening sessions in a loop is refused long before others are.
- Opening a session (`initialize` on Streamable HTTP, the GET of legacy SSE, a memory or stdio connection) is
  rate-limited per principal and per client address: token buckets of `initialize_per_minute_*` a minute, with
  the same number as burst. A stateless 2026-07-28 request opens no session and is not counted here (the
  policy's rate limits meter it like any call).
- Refusals are `RateLimited` with `retryAfter` (HTTP 429), the same answer as the global cap.
- Sans-IO: plain state and an injectable clock; the gateway calls `admit()` and `opened()`/`closed()`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bastion.core.config import LimitsConfig
from bastion.errors import RateLimited

MAX_BUCKETS: Final = 100_000
"""Buckets kept at most (principals and addresses); beyond it, buckets idle for a full refill are dropped."""
REFILL_SECONDS: Final = 60.0
"""A bucket holds a minute's worth of tokens and refills in a minute: one idle this long is full (forgettable)."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class FairLimits:
    """Per-principal session caps and per-principal/per-address session-opening rates, for one replica."""

    def __init__(self, config: LimitsConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._sessions: dict[str, int] = {}

    def admit(self, principal: str, remote: str) -> None:
        """Check that `principal` (from `remote`) may open one more session now.

        Raises:
            RateLimited: over its session cap, or opening sessions too fast (per principal or per address).
        """
        cap = self._config.max_sessions_per_principal
        if self._sessions.get(principal, 0) >= cap:
            raise RateLimited(
                "too many sessions for this principal",
                data={"retryAfter": 5, "limit": cap, "scope": "principal"},
            )
        checks = [(f"p:{principal}", self._config.initialize_per_minute_per_principal, "principal")]
        if remote:
            host = remote.rsplit(":", 1)[0] if remote.count(":") == 1 else remote
            checks.append((f"a:{host}", self._config.initialize_per_minute_per_address, "address"))
        now = self._clock()
        for key, per_minute, scope in checks:
            wait = self._wait(key, per_minute, now)
            if wait > 0:
                raise RateLimited(
                    "sessions opened too fast",
                    data={"retryAfter": max(1, math.ceil(wait)), "limit": per_minute, "scope": scope},
                )
        for key, _per_minute, _scope in checks:
            self._buckets[key].tokens -= 1

    def _wait(self, key: str, per_minute: int, now: float) -> float:
        """Seconds until one token is in the bucket (0: there is one), refilling it first."""
        rate = per_minute / 60.0
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(tokens=float(per_minute), updated=now)
        bucket.tokens = min(float(per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / rate

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if now - b.updated >= REFILL_SECONDS]:
            del self._buckets[key]

    def opened(self, principal: str) -> None:
        self._sessions[principal] = self._sessions.get(principal, 0) + 1

    def closed(self, principal: str) -> None:
        left = self._sessions.get(principal, 0) - 1
        if left > 0:
            self._sessions[principal] = left
        else:
            self._sessions.pop(principal, None)
