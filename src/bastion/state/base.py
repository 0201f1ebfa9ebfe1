"""The state seams: key-value, buckets, leases, records, members and pub/sub, and `StateStore`, all of them.

Rules:
- Every method is async and atomic on its own; callers never need a read-modify-write of their own
  (`replace_record` is the compare-and-set for the few records several writers update).
- Counters (buckets, leases) may be ephemeral; records are durable (API keys, pins survive a restart).
- Values are opaque to the store: records are JSON-able mappings, key/value entries are bytes.
- Members (`put_members`...) are small values that expire one by one: the session registry and replica heartbeats.
- Events are best effort and not durable: every record write is announced as a `record` event, and `publish`
  sends others; a subscriber that was disconnected must re-read what it cares about (the store is the truth).
- Implementations: `EmbeddedStateStore` (one process) and `RedisStateStore` (many replicas, Lua scripts).
- Users take the narrow Protocol they need (`RecordStore` for pins and keys, `BucketStore`+`LeaseStore` for rate
  limits...); only the composition root holds the whole `StateStore`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Protocol, Self, runtime_checkable

RECORD_TOPIC: Final = "record"
"""Topic of the event every `put_record`, `replace_record` and `delete_record` announces (`namespace`, `id`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketResult:
    """The outcome of one token-bucket take."""

    allowed: bool
    """True when the tokens were taken."""
    remaining: float
    """Tokens left in the bucket after this take."""
    retry_after: float
    """Seconds until enough tokens are back (0 when allowed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StateEvent:
    """One announcement on the store's event feed."""

    topic: str
    """What happened: `record` (a record changed), or a topic a caller published (`policy`, `session-revoked`)."""
    data: dict[str, Any] = field(default_factory=dict)
    """JSON-able facts (ids and hashes, never secrets)."""
    origin: str = ""
    """The id of the store instance that published it (a process can tell its own events)."""


class Subscription(Protocol):
    """Events published after `StateStore.subscribe()` returned, in order, until `aclose()`."""

    async def receive(self, timeout: float) -> StateEvent | None:
        """The next event, or None when none came within `timeout` seconds. Raises when the feed is broken."""
        ...

    async def aclose(self) -> None: ...


class KeyValueStore(Protocol):
    """Bytes under keys, optionally expiring: sessions of the dashboard, salts, anomaly baselines."""

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


class BucketStore(Protocol):
    """Token buckets (rate limits)."""

    async def take_tokens(
        self, key: str, *, capacity: float, refill_per_second: float, cost: float = 1.0
    ) -> BucketResult:
        """Atomically refill the bucket `key` (full when new) and take `cost` tokens if that many are there."""
        ...


class LeaseStore(Protocol):
    """Counted, expiring slots (concurrency limits)."""

    async def acquire_lease(self, key: str, *, limit: int, ttl: float) -> str | None:
        """Hold one of `limit` concurrent slots under `key`; the lease id, or None when all are held.

        A lease not released within `ttl` seconds expires, so a crashed holder cannot leak a slot forever.
        """
        ...

    async def release_lease(self, key: str, lease: str) -> None:
        """Give a slot back (a no-op for an unknown or expired lease)."""
        ...


class RecordStore(Protocol):
    """Durable JSON-able records by namespace and id: API keys, pins, approvals, witness heads."""

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

    async def replace_record(
        self,
        namespace: str,
        record_id: str,
        record: Mapping[str, Any],
        *,
        expected: Mapping[str, Any] | None,
    ) -> bool:
        """Write `record` only if the stored one still equals `expected` (None: only if absent).

        False means another writer changed it first: read it again and redo the change.
        """
        ...


class MemberStore(Protocol):
    """Sets of small values that expire one by one: the session registry, replica heartbeats, taint marks."""

    async def put_members(self, key: str, members: Mapping[str, bytes], *, ttl: float) -> None:
        """Add or refresh members of the set `key`, each with a small value, expiring `ttl` seconds from now."""
        ...

    async def get_member(self, key: str, member: str) -> bytes | None:
        """A member's value, or None when absent or expired."""
        ...

    async def list_members(self, key: str) -> dict[str, bytes]:
        """Every live member of `key` with its value."""
        ...

    async def count_members(self, key: str) -> int:
        """How many members of `key` are live."""
        ...

    async def remove_members(self, key: str, members: Sequence[str]) -> None:
        """Drop members at once (unknown ones are ignored)."""
        ...


class PubSub(Protocol):
    """Best-effort events to every process sharing the store."""

    @property
    def origin(self) -> str:
        """This store instance's id, carried by the events it publishes."""
        ...

    async def publish(self, topic: str, data: Mapping[str, Any]) -> None:
        """Announce an event to every subscriber of every process sharing this store (best effort)."""
        ...

    async def subscribe(self) -> Subscription:
        """Start receiving events (this process's own included); close the subscription when done."""
        ...


@runtime_checkable
class StateStore(KeyValueStore, BucketStore, LeaseStore, RecordStore, MemberStore, PubSub, Protocol):
    """All of the above behind one resource, so one process and a Redis cluster look the same to callers.

    Implementations and the composition root hold this; every user names the narrow seam it needs.
    """

    async def aclose(self) -> None:
        """Release connections and files."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
