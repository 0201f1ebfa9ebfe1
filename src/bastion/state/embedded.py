"""`EmbeddedStateStore`: durable records in one SQLite file, counters and expiring values in this process.

Rules:
- SQLite is only touched from worker threads, one operation at a time (a capacity limiter of one), so the
  event loop never blocks on disk and the single connection is never used concurrently.
- Buckets, leases and key/value entries live in dicts: they are cheap to lose on restart and must be fast.
- Idle buckets and expired entries are swept every `_SWEEP_EVERY` operations, so memory stays bounded by the
  number of *active* keys.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import anyio
import anyio.to_thread

from bastion.state.base import BucketResult

_SWEEP_EVERY: Final = 1024
"""Operations between two sweeps of idle in-memory entries."""

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
        self._limiter = anyio.CapacityLimiter(1)
        self._values: dict[str, tuple[bytes, float | None]] = {}
        self._buckets: dict[str, _Bucket] = {}
        self._leases: dict[str, dict[str, float]] = {}
        self._ops = 0

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

    def _connect(self) -> sqlite3.Connection:
        if self._path != ":memory:":
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL" if self._path != ":memory:" else "PRAGMA journal_mode=MEMORY")
        db.execute(_SCHEMA)
        return db

    async def aclose(self) -> None:
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

    def _put(self, namespace: str, record_id: str, body: str) -> None:
        self._conn().execute(
            "INSERT INTO records (namespace, id, body) VALUES (?, ?, ?) "
            "ON CONFLICT (namespace, id) DO UPDATE SET body = excluded.body",
            (namespace, record_id, body),
        )

    async def get_record(self, namespace: str, record_id: str) -> dict[str, Any] | None:
        body: str | None = await self._run(self._get, namespace, record_id)
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
        return deleted

    def _delete(self, namespace: str, record_id: str) -> bool:
        cursor = self._conn().execute(
            "DELETE FROM records WHERE namespace = ? AND id = ?", (namespace, record_id)
        )
        return cursor.rowcount > 0

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the state store is closed")
        return self._db


def _loads(body: str) -> dict[str, Any]:
    value = json.loads(body)
    return value if isinstance(value, dict) else {}
