"""The `StateStore` seam: the few shared-state operations auth, policy, rate limits and approvals need.

Rules:
- Every method is async and atomic on its own; callers never need a read-modify-write of their own.
- Counters (buckets, leases) may be ephemeral; records are durable (API keys, pins survive a restart).
- Values are opaque to the store: records are JSON-able mappings, key/value entries are bytes.
- Implementations: `EmbeddedStateStore` (one process) and `RedisStateStore` (many replicas, Lua scripts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketResult:
    """The outcome of one token-bucket take."""

    allowed: bool
    """True when the tokens were taken."""
    remaining: float
    """Tokens left in the bucket after this take."""
    retry_after: float
    """Seconds until enough tokens are back (0 when allowed)."""


@runtime_checkable
class StateStore(Protocol):
    """Shared state behind one small interface, so one process and a Redis cluster look the same to callers."""

    async def get(self, key: str) -> bytes | None:
        """The value under `key`, or None when absent or expired."""
        ...

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Store `value` (expiring after `ttl` seconds). With `only_if_absent`, False means someone was first."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove `key`; True when it existed."""
        ...

    async def take_tokens(
        self, key: str, *, capacity: float, refill_per_second: float, cost: float = 1.0
    ) -> BucketResult:
        """Atomically refill the bucket `key` (full when new) and take `cost` tokens if that many are there."""
        ...

    async def acquire_lease(self, key: str, *, limit: int, ttl: float) -> str | None:
        """Hold one of `limit` concurrent slots under `key`; the lease id, or None when all are held.

        A lease not released within `ttl` seconds expires, so a crashed holder cannot leak a slot forever.
        """
        ...

    async def release_lease(self, key: str, lease: str) -> None:
        """Give a slot back (a no-op for an unknown or expired lease)."""
        ...

    async def put_record(self, namespace: str, record_id: str, record: Mapping[str, Any]) -> None:
        """Create or replace the durable record `record_id` in `namespace` (API keys, pins, approvals)."""
        ...

    async def get_record(self, namespace: str, record_id: str) -> dict[str, Any] | None:
        """One record, looked up by id without scanning."""
        ...

    async def list_records(self, namespace: str) -> list[tuple[str, dict[str, Any]]]:
        """Every record of a namespace as (id, record), sorted by id."""
        ...

    async def delete_record(self, namespace: str, record_id: str) -> bool:
        """Remove a record; True when it existed."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
