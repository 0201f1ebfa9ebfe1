"""`EmbeddedStateStore`: durable records in one SQLite file, counters and expiring values in this process.

Rules:
- SQLite is only touched from worker threads, one operation at a time (a capacity limiter of one), so the
  event loop never blocks on disk and the single connection is never used concurrently. One exception: the
  record cache's `PRAGMA data_version` on a second connection of its own, read on the event loop (a few
  microseconds, no page read: it looks at the WAL index), because a thread hop per read cost more than the read.
- `get_record` answers from a small cache of bodies while `data_version` is unchanged, i.e. while no connection,
  of this process or another (the CLI revoking a key), has committed to the file since the body was read; so an
  API key checked on every request costs no thread hop, and a revocation is still seen at the next request.
- Buckets, leases and key/value entries live in dicts: they are cheap to lose on restart and must be fast.
- Idle buckets and expired entries are swept every `_SWEEP_EVERY` operations, so memory stays bounded by the
  number of *active* keys.
- Events reach subscribers of this store instance only: another process sharing the SQLite file (the CLI) is not
  heard, which is why consumers of events keep a slower poll of the store as well.
- `replace_record` runs its read and its write in one `BEGIN IMMEDIATE` transaction, so it is a real
  compare-and-set even against another process writing the same file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import anyio
import anyio.to_thread

from bastion.state.base import RECORD_TOPIC, BucketResult, StateEvent

_SWEEP_EVERY: Final = 1024
"""Operations between two sweeps of idle in-memory entries."""
_CACHED_RECORDS: Final = 4096
"""Record bodies (or their absence) kept by `get_record`; the oldest is dropped beyond this."""
_QUEUE_LIMIT: Final = 10_000
"""Events buffered per subscriber; beyond this a slow subscriber misses events (it re-reads the store)."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS records (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (namespace, id)
)
"""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    idle_after: float
    """monotonic() after which the bucket is full again and may be dropped."""


class EmbeddedStateStore:
    """The single-process `StateStore`. `path=":memory:"` keeps records in memory too (tests)."""

    def __init__(
        self, path: str | Path = "bastion-state.db", *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._path = str(path)
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._watch: sqlite3.Connection | None = None
        """Only asked `PRAGMA data_version`, on the event loop (None for `:memory:`: nothing to cache against)."""
        self._cached: dict[tuple[str, str], tuple[int, str | None]] = {}
        """(namespace, id) -> (data_version read before the body was, body or None when there was no record)."""
        self._limiter = anyio.CapacityLimiter(1)
        self._values: dict[str, tuple[bytes, float | None]] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._leases: dict[str, dict[str, float]] = {}
        self._members: dict[str, dict[str, tuple[bytes, float]]] = {}
        self._subscribers: set[_LocalSubscription] = set()
        self._ops = 0
        self.origin = uuid.uuid4().hex

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open (and create) the SQLite file. Called lazily by the first record operation too."""
        if self._db is None:
            self._db = await anyio.to_thread.run_sync(self._connect, limiter=self._limiter)
            if self._path != ":memory:":
                self._watch = await anyio.to_thread.run_sync(self._connect_watch, limiter=self._limiter)

    def _connect(self) -> sqlite3.Connection:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL" if self._path != ":memory:" else "PRAGMA journal_mode=MEMORY")
        db.execute(_SCHEMA)
        return db

    def _connect_watch(self) -> sqlite3.Connection:
        return sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)

    def _version(self) -> int | None:
        """The file's `data_version` (changes whenever any other connection commits), None when unknown."""
        watch = self._watch
        if watch is None:
            return None
        try:
            rows = watch.execute("PRAGMA data_version").fetchall()  # stepped to the end: no read left open
        except sqlite3.Error:
            return None
        return int(rows[0][0]) if rows else None

    async def aclose(self) -> None:
        watch, self._watch = self._watch, None
        self._cached.clear()
        if watch is not None:
            await anyio.to_thread.run_sync(watch.close, limiter=self._limiter)
        db, self._db = self._db, None
        if db is not None:
            await anyio.to_thread.run_sync(db.close, limiter=self._limiter)

    async def _run(self, fn: Any, *args: Any) -> Any:
        await self.open()
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    # -- key/value --------------------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        self._tick()
        entry = self._values.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires <= self._clock():
            del self._values[key]
            return None
        return value

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, only_if_absent: bool = False
    ) -> bool:
        if only_if_absent and await self.get(key) is not None:
            return False
        self._values[key] = (value, None if ttl is None else self._clock() + ttl)
        return True

    async def delete(self, key: str) -> bool:
        present = await self.get(key) is not None
        self._values.pop(key, None)
        return present

    # -- counters ---------------------------------------------------------------------------------------------

    async def take_tokens(
        self, key: str, *, capacity: float, refill_per_second: float, cost: float = 1.0
    ) -> BucketResult:
        self._tick()
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(tokens=capacity, updated=now, idle_after=now)
            self._buckets[key] = bucket
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * refill_per_second)
        bucket.updated = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            allowed, retry = True, 0.0
        else:
            allowed, retry = False, (cost - bucket.tokens) / refill_per_second
        bucket.idle_after = now + (capacity - bucket.tokens) / refill_per_second
        return BucketResult(allowed=allowed, remaining=bucket.tokens, retry_after=retry)

    async def acquire_lease(self, key: str, *, limit: int, ttl: float) -> str | None:
        self._tick()
        now = self._clock()
        leases = self._leases.setdefault(key, {})
        for lease in [lease for lease, expires in leases.items() if expires <= now]:
            del leases[lease]
        if len(leases) >= limit:
            return None
        lease = uuid.uuid4().hex
        leases[lease] = now + ttl
        return lease

    async def release_lease(self, key: str, lease: str) -> None:
        leases = self._leases.get(key)
        if leases is not None:
            leases.pop(lease, None)
            if not leases:
                del self._leases[key]

    def _tick(self) -> None:
        self._ops += 1
        if self._ops % _SWEEP_EVERY:
            return
        now = self._clock()
        self._buckets = {k: b for k, b in self._buckets.items() if b.idle_after > now}
        self._values = {k: v for k, v in self._values.items() if v[1] is None or v[1] > now}
        for key in list(self._members):
            self._live_members(key, now)
        for key in list(self._leases):
            live = {lease: exp for lease, exp in self._leases[key].items() if exp > now}
            if live:
                self._leases[key] = live
            else:
                del self._leases[key]

    # -- durable records --------------------------------------------------------------------------------------

    async def put_record(self, namespace: str, record_id: str, record: Mapping[str, Any]) -> None:
        body = json.dumps(dict(record), sort_keys=True)
        await self._run(self._put, namespace, record_id, body)
        self._announce(namespace, record_id)

    def _put(self, namespace: str, record_id: str, body: str) -> None:
        self._conn().execute(
            "INSERT INTO records (namespace, id, body) VALUES (?, ?, ?) "
            "ON CONFLICT (namespace, id) DO UPDATE SET body = excluded.body",
            (namespace, record_id, body),
        )

    async def get_record(self, namespace: str, record_id: str) -> dict[str, Any] | None:
        # The version is read before the body: a commit in between makes the entry stale at once, never wrong.
        version = self._version()
        key = (namespace, record_id)
        cached = self._cached.get(key)
        if version is not None and cached is not None and cached[0] == version:
            body = cached[1]
        else:
            body = await self._run(self._get, namespace, record_id)
            if version is not None:
                if len(self._cached) >= _CACHED_RECORDS:
                    self._cached.pop(next(iter(self._cached)))
                self._cached[key] = (version, body)
        return None if body is None else _loads(body)

    def _get(self, namespace: str, record_id: str) -> str | None:
        row = (
            self._conn()
            .execute("SELECT body FROM records WHERE namespace = ? AND id = ?", (namespace, record_id))
            .fetchone()
        )
        return None if row is None else str(row[0])

    async def list_records(self, namespace: str) -> list[tuple[str, dict[str, Any]]]:
        rows: list[tuple[str, str]] = await self._run(self._list, namespace)
        return [(record_id, _loads(body)) for record_id, body in rows]

    def _list(self, namespace: str) -> list[tuple[str, str]]:
        cursor = self._conn().execute(
            "SELECT id, body FROM records WHERE namespace = ? ORDER BY id", (namespace,)
        )
        return [(str(r[0]), str(r[1])) for r in cursor.fetchall()]

    async def delete_record(self, namespace: str, record_id: str) -> bool:
        deleted: bool = await self._run(self._delete, namespace, record_id)
        if deleted:
            self._announce(namespace, record_id)
        return deleted

    def _delete(self, namespace: str, record_id: str) -> bool:
        cursor = self._conn().execute(
            "DELETE FROM records WHERE namespace = ? AND id = ?", (namespace, record_id)
        )
        return cursor.rowcount > 0

    async def replace_record(
        self,
        namespace: str,
        record_id: str,
        record: Mapping[str, Any],
        *,
        expected: Mapping[str, Any] | None,
    ) -> bool:
        body = json.dumps(dict(record), sort_keys=True)
        before = None if expected is None else json.dumps(dict(expected), sort_keys=True)
        swapped: bool = await self._run(self._swap, namespace, record_id, body, before)
        if swapped:
            self._announce(namespace, record_id)
        return swapped

    def _swap(self, namespace: str, record_id: str, body: str, before: str | None) -> bool:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        try:
            current = self._get(namespace, record_id)
            if current is not None and before is not None:
                current = json.dumps(json.loads(current), sort_keys=True)  # written by another version?
            if current != before:
                return False
            self._put(namespace, record_id, body)
            return True
        finally:
            db.execute("COMMIT")

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the state store is closed")
        return self._db

    # -- members ----------------------------------------------------------------------------------------------

    def _live_members(self, key: str, now: float) -> dict[str, tuple[bytes, float]]:
        members = self._members.get(key)
        if members is None:
            return {}
        for member in [m for m, (_v, expires) in members.items() if expires <= now]:
            del members[member]
        if not members:
            del self._members[key]
        return members

    async def put_members(self, key: str, members: Mapping[str, bytes], *, ttl: float) -> None:
        self._tick()
        expires = self._clock() + ttl
        target = self._members.setdefault(key, {})
        for member, value in members.items():
            target[member] = (value, expires)

    async def get_member(self, key: str, member: str) -> bytes | None:
        entry = self._live_members(key, self._clock()).get(member)
        return None if entry is None else entry[0]

    async def list_members(self, key: str) -> dict[str, bytes]:
        return {m: v for m, (v, _e) in self._live_members(key, self._clock()).items()}

    async def count_members(self, key: str) -> int:
        return len(self._live_members(key, self._clock()))

    async def remove_members(self, key: str, members: Sequence[str]) -> None:
        target = self._members.get(key)
        if target is not None:
            for member in members:
                target.pop(member, None)

    # -- events -----------------------------------------------------------------------------------------------

    async def publish(self, topic: str, data: Mapping[str, Any]) -> None:
        self._deliver(StateEvent(topic=topic, data=dict(data), origin=self.origin))

    async def subscribe(self) -> _LocalSubscription:
        subscription = _LocalSubscription(self._subscribers)
        self._subscribers.add(subscription)
        return subscription

    def _announce(self, namespace: str, record_id: str) -> None:
        if self._subscribers:
            self._deliver(
                StateEvent(
                    topic=RECORD_TOPIC, data={"namespace": namespace, "id": record_id}, origin=self.origin
                )
            )

    def _deliver(self, event: StateEvent) -> None:
        for subscription in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a subscriber that lags re-reads the store
                subscription.queue.put_nowait(event)


class _LocalSubscription:
    """A subscriber of an `EmbeddedStateStore`: a bounded queue the store fills."""

    def __init__(self, owner: set[_LocalSubscription]) -> None:
        self.queue: asyncio.Queue[StateEvent] = asyncio.Queue(_QUEUE_LIMIT)
        self._owner = owner

    async def receive(self, timeout: float) -> StateEvent | None:
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get()
        except TimeoutError:
            return None

    async def aclose(self) -> None:
        self._owner.discard(self)


def _loads(body: str) -> dict[str, Any]:
    value = json.loads(body)
    return value if isinstance(value, dict) else {}
