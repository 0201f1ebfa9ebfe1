"""`SqliteAuditSink`: the default sink, one SQLite file in WAL mode with one transaction per batch.

Rules:
- SQLite is only touched from worker threads: one writer connection and one reader connection, each used by
  one thread at a time (a capacity limiter of one each), so queries never wait behind a commit.
- A batch is one `BEGIN IMMEDIATE` transaction: read the chain head, link, insert, move the head, commit. The
  immediate lock serialises writers across processes sharing the file, so their chain stays one chain.
- `synchronous=FULL` (the default) fsyncs the WAL at every commit: an event acknowledged to the recorder
  survives a power loss, not only a crash.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread

from bastion.audit.chain import Anchor, ChainHead, StoredEvent, link
from bastion.audit.config import SqliteSinkConfig, sink_name
from bastion.audit.event import AuditEvent
from bastion.audit.signing import SigningKey
from bastion.audit.sinks.base import (
    GROUP_BY,
    INDEXED_COLUMNS,
    SCAN_PAGE,
    AuditQuery,
    EncodedEvent,
    column_mismatch,
    sql_where,
)

T = TypeVar("T")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    replica TEXT NOT NULL,
    seq INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    time REAL NOT NULL,
    session_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    server TEXT NOT NULL,
    target TEXT NOT NULL,
    method TEXT NOT NULL,
    outcome TEXT NOT NULL,
    content TEXT NOT NULL,
    UNIQUE (replica, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS audit_events_event_id ON audit_events (event_id);
CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events (time);
CREATE INDEX IF NOT EXISTS audit_events_principal ON audit_events (principal, time);
CREATE INDEX IF NOT EXISTS audit_events_tool ON audit_events (server, target, time);
CREATE TABLE IF NOT EXISTS audit_heads (
    replica TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_anchors (
    replica TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    time REAL NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (replica, kind, seq)
);
"""
_COLUMNS: Final = ", ".join(INDEXED_COLUMNS)
_INSERT: Final = (
    f"INSERT INTO audit_events (replica, seq, prev_hash, hash, {_COLUMNS}, content) "
    f"VALUES (?, ?, ?, ?, {', '.join('?' * len(INDEXED_COLUMNS))}, ?)"
)
_EVENT: Final = "SELECT replica, seq, prev_hash, hash, content FROM audit_events"
_EVENT_BY_ID: Final = "SELECT id, replica, seq, prev_hash, hash, content FROM audit_events"
_ANCHOR_COLUMNS: Final = "replica, kind, seq, hash, time, algorithm, key_id, signature"


def _event(row: Sequence[Any]) -> AuditEvent:
    return StoredEvent(
        replica=row[0], seq=row[1], prev_hash=row[2], hash=row[3], content=row[4].encode()
    ).event()


def _anchor(row: Sequence[Any]) -> Anchor:
    return Anchor.from_dict(dict(zip(_ANCHOR_COLUMNS.split(", "), row, strict=True)))


class SqliteAuditSink:
    """Audit events in one SQLite file (also the reader behind `bastion audit` and the dashboard)."""

    def __init__(self, config: SqliteSinkConfig | None = None, *, path: str | Path | None = None) -> None:
        config = config or SqliteSinkConfig()
        self.name = sink_name(config)
        self.path = str(path if path is not None else config.path)
        self._config = config
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._write_limiter = anyio.CapacityLimiter(1)
        self._read_limiter = anyio.CapacityLimiter(1)

    # -- lifecycle --------------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is None:
            self._writer = await anyio.to_thread.run_sync(self._connect, True, limiter=self._write_limiter)

    def _connect(self, create: bool) -> sqlite3.Connection:
        if create and self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path,
            check_same_thread=False,
            isolation_level=None,
            timeout=self._config.busy_timeout_seconds,
        )
        try:
            db.execute(f"PRAGMA busy_timeout = {int(self._config.busy_timeout_seconds * 1000)}")
            if create:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
            db.execute(f"PRAGMA synchronous={self._config.synchronous.upper()}")
        except BaseException:
            db.close()
            raise
        return db

    async def aclose(self) -> None:
        for attr, limiter in (("_writer", self._write_limiter), ("_reader", self._read_limiter)):
            db = getattr(self, attr)
            setattr(self, attr, None)
            if db is not None:
                await anyio.to_thread.run_sync(db.close, limiter=limiter)

    async def __aenter__(self) -> SqliteAuditSink:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _write_op(self, fn: Callable[..., T], *args: Any) -> T:
        await self.open()
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._write_limiter)

    async def _read_op(self, fn: Callable[..., T], *args: Any) -> T:
        await self.open()
        if self._reader is None:
            self._reader = await anyio.to_thread.run_sync(self._connect, False, limiter=self._read_limiter)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._read_limiter)

    def _w(self) -> sqlite3.Connection:
        if self._writer is None:
            raise RuntimeError("the audit sink is closed")
        return self._writer

    def _r(self) -> sqlite3.Connection:
        if self._reader is None:
            raise RuntimeError("the audit sink is closed")
        return self._reader

    # -- writing ----------------------------------------------------------------------------------------------

    async def write(self, replica: str, events: Sequence[EncodedEvent]) -> ChainHead:
        return await self._write_op(self._write, replica, list(events))

    def _write(self, replica: str, events: list[EncodedEvent]) -> ChainHead:
        db = self._w()
        db.execute("BEGIN IMMEDIATE")
        try:
            ids = [e.event_id for e in events]
            marks = ", ".join("?" * len(ids))
            known = {
                r[0]
                for r in db.execute(f"SELECT event_id FROM audit_events WHERE event_id IN ({marks})", ids)
            }
            fresh = [e for e in events if e.event_id not in known]
            head = self._head_in(db, replica)
            links = link(head, [e.content for e in fresh])
            db.executemany(
                _INSERT,
                [
                    (replica, seq, prev, digest, *e.columns, e.content.decode())
                    for e, (seq, prev, digest) in zip(fresh, links, strict=True)
                ],
            )
            if links:
                head = ChainHead(replica=replica, seq=links[-1][0], hash=links[-1][2])
                db.execute(
                    "INSERT INTO audit_heads (replica, seq, hash) VALUES (?, ?, ?) "
                    "ON CONFLICT (replica) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                    (replica, head.seq, head.hash),
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return head

    @staticmethod
    def _head_in(db: sqlite3.Connection, replica: str) -> ChainHead:
        row = db.execute("SELECT seq, hash FROM audit_heads WHERE replica = ?", (replica,)).fetchone()
        if row is None:  # no head recorded (first write, or the table was emptied): rebuild it from the data
            row = (
                db.execute(
                    "SELECT seq, hash FROM audit_events WHERE replica = ? ORDER BY seq DESC LIMIT 1",
                    (replica,),
                ).fetchone()
                or db.execute(
                    "SELECT seq, hash FROM audit_anchors WHERE replica = ? AND kind = 'prune' "
                    "ORDER BY seq DESC LIMIT 1",
                    (replica,),
                ).fetchone()
            )
        return ChainHead(replica=replica, seq=row[0], hash=row[1]) if row else ChainHead(replica=replica)

    async def write_anchor(self, anchor: Anchor) -> None:
        await self._write_op(self._put_anchor, anchor)

    def _put_anchor(self, anchor: Anchor) -> None:
        self._w().execute(
            f"INSERT OR REPLACE INTO audit_anchors ({_ANCHOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            tuple(anchor.to_dict().values()),
        )

    async def prune(self, before: float, key: SigningKey | None = None) -> list[Anchor]:
        return await self._write_op(self._prune, before, key)

    def _prune(self, before: float, key: SigningKey | None) -> list[Anchor]:
        db = self._w()
        anchors = []
        db.execute("BEGIN IMMEDIATE")
        try:
            cut = db.execute(
                "SELECT replica, MAX(seq) FROM audit_events WHERE time < ? GROUP BY replica", (before,)
            ).fetchall()
            for replica, seq in cut:
                (digest,) = db.execute(
                    "SELECT hash FROM audit_events WHERE replica = ? AND seq = ?", (replica, seq)
                ).fetchone()
                anchor = Anchor(replica=replica, kind="prune", seq=seq, hash=digest, time=time.time())
                anchor = key.sign(anchor) if key is not None else anchor
                db.execute("DELETE FROM audit_events WHERE replica = ? AND seq <= ?", (replica, seq))
                self._put_anchor(anchor)
                anchors.append(anchor)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return anchors

    # -- reading ----------------------------------------------------------------------------------------------

    async def search(self, query: AuditQuery) -> list[AuditEvent]:
        where, params = sql_where(query, lambda _i: "?")
        direction = "ASC" if query.order == "asc" else "DESC"
        sql = f"{_EVENT} {where} ORDER BY time {direction}, id {direction} LIMIT ? OFFSET ?"
        rows = await self._read_op(self._fetch, sql, [*params, query.limit, query.offset])
        return [_event(r) for r in rows]

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[Any]:
        return self._r().execute(sql, params).fetchall()

    async def get(self, event_id: str) -> AuditEvent | None:
        rows = await self._read_op(self._fetch, f"{_EVENT} WHERE event_id = ?", [event_id])
        return _event(rows[0]) if rows else None

    async def count(
        self, query: AuditQuery, *, by: str, bucket_seconds: float | None = None
    ) -> list[tuple[float | None, str, int]]:
        if by not in GROUP_BY:
            raise ValueError(f"cannot group by {by!r}")
        expression = GROUP_BY[by]
        where, params = sql_where(query, lambda _i: "?")
        bucket = "CAST(time / ? AS INTEGER) * ?" if bucket_seconds else "NULL"
        extra = [bucket_seconds, bucket_seconds] if bucket_seconds else []
        sql = (
            f"SELECT {bucket} AS b, {expression} AS v, COUNT(*) FROM audit_events {where} "
            "GROUP BY b, v ORDER BY b, v"
        )
        rows = await self._read_op(self._fetch, sql, [*extra, *params])
        return [(None if b is None else float(b), str(v), int(n)) for b, v, n in rows]

    async def tail(self, n: int) -> tuple[list[AuditEvent], str]:
        rows = await self._read_op(self._fetch, f"{_EVENT_BY_ID} ORDER BY id DESC LIMIT ?", [n])
        rows.reverse()
        return [_event(r[1:]) for r in rows], str(rows[-1][0]) if rows else "0"

    async def read_after(self, cursor: str, limit: int = 1000) -> tuple[list[AuditEvent], str]:
        sql = f"{_EVENT_BY_ID} WHERE id > ? ORDER BY id LIMIT ?"
        rows = await self._read_op(self._fetch, sql, [int(cursor or 0), limit])
        return [_event(r[1:]) for r in rows], str(rows[-1][0]) if rows else cursor

    async def replicas(self) -> list[str]:
        sql = (
            "SELECT replica FROM audit_heads UNION SELECT DISTINCT replica FROM audit_events "
            "UNION SELECT replica FROM audit_anchors ORDER BY 1"
        )
        return [r[0] for r in await self._read_op(self._fetch, sql, [])]

    async def scan(self, replica: str) -> AsyncIterator[StoredEvent]:
        after = -1
        sql = (
            f"SELECT id, replica, seq, prev_hash, hash, content, {_COLUMNS} FROM audit_events "
            "WHERE replica = ? AND seq > ? ORDER BY seq LIMIT ?"
        )
        while True:
            rows = await self._read_op(self._fetch, sql, [replica, after, SCAN_PAGE])
            for row in rows:
                content = row[5].encode()
                yield StoredEvent(
                    replica=row[1],
                    seq=row[2],
                    prev_hash=row[3],
                    hash=row[4],
                    content=content,
                    mismatch=column_mismatch(content, row[6:]),
                    position=f"{self.path} row {row[0]}",
                )
            if len(rows) < SCAN_PAGE:
                return
            after = rows[-1][2]

    async def anchors(self, replica: str) -> list[Anchor]:
        sql = f"SELECT {_ANCHOR_COLUMNS} FROM audit_anchors WHERE replica = ? ORDER BY seq, kind"
        return [_anchor(r) for r in await self._read_op(self._fetch, sql, [replica])]

    async def head(self, replica: str) -> ChainHead | None:
        rows = await self._read_op(
            self._fetch, "SELECT seq, hash FROM audit_heads WHERE replica = ?", [replica]
        )
        return ChainHead(replica=replica, seq=rows[0][0], hash=rows[0][1]) if rows else None
