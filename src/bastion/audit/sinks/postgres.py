"""`PostgresAuditSink`: audit events in PostgreSQL through asyncpg, shared by every replica of a cluster.

Rules:
- The schema is created on open under an advisory lock, so replicas starting together do not race.
- A batch is one transaction of two statements: lock the chain head row (`FOR UPDATE`) while learning which
  event ids are already stored, then insert the batch from arrays (`unnest`) and move the head in one CTE.
  Two processes writing the same replica's chain are serialised by the row lock; other chains never wait.
- Content is stored as TEXT, not JSONB: JSONB reorders keys and would break the byte-exact hash.
- Identifiers (schema, table prefix) are validated by the config; values always go as parameters.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final

import asyncpg

from bastion.audit.chain import GENESIS, Anchor, ChainHead, StoredEvent, link
from bastion.audit.config import PostgresSinkConfig, sink_name
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

_SCHEMA_LOCK: Final = 0x6261_7374_696F_6E01
"""Advisory lock id held while creating the schema ("bastion" + 1)."""
_COLUMNS: Final = ", ".join(INDEXED_COLUMNS)
_TYPES: Final = {"time": "float8"}
_ANCHOR_COLUMNS: Final = "replica, kind, seq, hash, time, algorithm, key_id, signature"


def _event(row: Any) -> AuditEvent:
    return StoredEvent(
        replica=row["replica"],
        seq=row["seq"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        content=row["content"].encode(),
    ).event()


class PostgresAuditSink:
    """Audit events in PostgreSQL (tables `<prefix>_events`, `_heads`, `_anchors` in the configured schema)."""

    def __init__(self, config: PostgresSinkConfig) -> None:
        self.name = sink_name(config)
        self._config = config
        prefix = f"{config.schema_name}.{config.table_prefix}"
        self._events = f"{prefix}_events"
        self._heads = f"{prefix}_heads"
        self._anchors = f"{prefix}_anchors"
        self._pool: Any = None
        self._ready_replicas: set[str] = set()
        casts = ", ".join(f"${i + 5}::{_TYPES.get(c, 'text')}[]" for i, c in enumerate(INDEXED_COLUMNS))
        n = len(INDEXED_COLUMNS) + 5
        self._insert = (
            f"WITH ins AS (INSERT INTO {self._events} (replica, seq, prev_hash, hash, {_COLUMNS}, content) "
            f"SELECT $1, * FROM unnest($2::int8[], $3::text[], $4::text[], {casts}, ${n}::text[])) "
            f"UPDATE {self._heads} SET seq = ${n + 1}, hash = ${n + 2} WHERE replica = $1"
        )

        self._lock_head = (
            f"SELECT seq, hash, ARRAY(SELECT event_id FROM {self._events} WHERE event_id = ANY($2::text[])) "
            f"AS known FROM {self._heads} WHERE replica = $1 FOR UPDATE"
        )

    def _ddl(self) -> str:
        p, c = self._config.table_prefix, self._config.schema_name
        return f"""
CREATE SCHEMA IF NOT EXISTS {c};
CREATE TABLE IF NOT EXISTS {self._events} (
    id BIGSERIAL PRIMARY KEY,
    replica TEXT NOT NULL,
    seq BIGINT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    time DOUBLE PRECISION NOT NULL,
    session_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    server TEXT NOT NULL,
    target TEXT NOT NULL,
    method TEXT NOT NULL,
    outcome TEXT NOT NULL,
    content TEXT NOT NULL,
    UNIQUE (replica, seq)
);
CREATE UNIQUE INDEX IF NOT EXISTS {p}_events_event_id ON {self._events} (event_id);
CREATE INDEX IF NOT EXISTS {p}_events_time ON {self._events} (time);
CREATE INDEX IF NOT EXISTS {p}_events_principal ON {self._events} (principal, time);
CREATE INDEX IF NOT EXISTS {p}_events_tool ON {self._events} (server, target, time);
CREATE TABLE IF NOT EXISTS {self._heads} (replica TEXT PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {self._anchors} (
    replica TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    time DOUBLE PRECISION NOT NULL,
    algorithm TEXT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (replica, kind, seq)
);
"""

    # -- lifecycle --------------------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._pool is not None:
            return
        timeout = self._config.timeout_seconds
        pool = await asyncpg.create_pool(
            self._config.url.get_secret_value(),
            min_size=1,
            max_size=self._config.pool_size,
            command_timeout=timeout,
            timeout=timeout,
        )
        try:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
                await conn.execute(self._ddl())
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        self._ready_replicas.clear()
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> PostgresAuditSink:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _conn(self) -> Any:
        await self.open()
        return self._pool.acquire()

    # -- writing ----------------------------------------------------------------------------------------------

    async def write(self, replica: str, events: Sequence[EncodedEvent]) -> ChainHead:
        async with await self._conn() as conn:
            if replica not in self._ready_replicas:
                await self._ensure_head(conn, replica)
                self._ready_replicas.add(replica)
            async with conn.transaction():
                row = await conn.fetchrow(self._lock_head, replica, [e.event_id for e in events])
                if row is None:  # the head row vanished since we ensured it: rebuild it, then lock it
                    await self._ensure_head(conn, replica)
                    row = await conn.fetchrow(self._lock_head, replica, [e.event_id for e in events])
                known = set(row["known"])
                fresh = [e for e in events if e.event_id not in known]
                head = ChainHead(replica=replica, seq=row["seq"], hash=row["hash"])
                links = link(head, [e.content for e in fresh])
                if not links:
                    return head
                columns = [[e.columns[i] for e in fresh] for i in range(len(INDEXED_COLUMNS))]
                await conn.execute(
                    self._insert,
                    replica,
                    [s for s, _, _ in links],
                    [p for _, p, _ in links],
                    [h for _, _, h in links],
                    *columns,
                    [e.content.decode() for e in fresh],
                    links[-1][0],
                    links[-1][2],
                )
                return ChainHead(replica=replica, seq=links[-1][0], hash=links[-1][2])

    async def _ensure_head(self, conn: Any, replica: str) -> None:
        # The head row is rebuilt from the data when missing, so a lost row cannot restart the chain at 1.
        await conn.execute(
            f"INSERT INTO {self._heads} (replica, seq, hash) SELECT $1, seq, hash FROM ("
            f"(SELECT seq, hash FROM {self._events} WHERE replica = $1 ORDER BY seq DESC LIMIT 1) UNION ALL "
            f"(SELECT seq, hash FROM {self._anchors} WHERE replica = $1 AND kind = 'prune' "
            f"ORDER BY seq DESC LIMIT 1) UNION ALL (SELECT 0, $2)) s ORDER BY seq DESC LIMIT 1 "
            "ON CONFLICT (replica) DO NOTHING",
            replica,
            GENESIS,
        )

    async def write_anchor(self, anchor: Anchor) -> None:
        async with await self._conn() as conn:
            await self._put_anchor(conn, anchor)

    async def _put_anchor(self, conn: Any, anchor: Anchor) -> None:
        await conn.execute(
            f"INSERT INTO {self._anchors} ({_ANCHOR_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (replica, kind, seq) DO UPDATE SET hash = excluded.hash, time = excluded.time, "
            "algorithm = excluded.algorithm, key_id = excluded.key_id, signature = excluded.signature",
            *anchor.to_dict().values(),
        )

    async def prune(self, before: float, key: SigningKey | None = None) -> list[Anchor]:
        anchors = []
        async with await self._conn() as conn, conn.transaction():
            cut = await conn.fetch(
                f"SELECT e.replica, e.seq, e.hash FROM {self._events} e JOIN (SELECT replica, MAX(seq) AS seq "
                f"FROM {self._events} WHERE time < $1 GROUP BY replica) m USING (replica, seq)",
                before,
            )
            for row in cut:
                anchor = Anchor(
                    replica=row["replica"], kind="prune", seq=row["seq"], hash=row["hash"], time=time.time()
                )
                anchor = key.sign(anchor) if key is not None else anchor
                await conn.execute(
                    f"DELETE FROM {self._events} WHERE replica = $1 AND seq <= $2", anchor.replica, anchor.seq
                )
                await self._put_anchor(conn, anchor)
                anchors.append(anchor)
        return anchors

    # -- reading ----------------------------------------------------------------------------------------------

    async def _fetch(self, sql: str, *params: Any) -> list[Any]:
        async with await self._conn() as conn:
            rows: list[Any] = await conn.fetch(sql, *params)
            return rows

    async def search(self, query: AuditQuery) -> list[AuditEvent]:
        where, params = sql_where(query, lambda i: f"${i}")
        direction = "ASC" if query.order == "asc" else "DESC"
        n = len(params)
        sql = (
            f"SELECT replica, seq, prev_hash, hash, content FROM {self._events} {where} "
            f"ORDER BY time {direction}, id {direction} LIMIT ${n + 1} OFFSET ${n + 2}"
        )
        return [_event(r) for r in await self._fetch(sql, *params, query.limit, query.offset)]

    async def get(self, event_id: str) -> AuditEvent | None:
        rows = await self._fetch(
            f"SELECT replica, seq, prev_hash, hash, content FROM {self._events} WHERE event_id = $1", event_id
        )
        return _event(rows[0]) if rows else None

    async def count(
        self, query: AuditQuery, *, by: str, bucket_seconds: float | None = None
    ) -> list[tuple[float | None, str, int]]:
        if by not in GROUP_BY:
            raise ValueError(f"cannot group by {by!r}")
        expression = GROUP_BY[by]
        where, params = sql_where(query, lambda i: f"${i}")
        if bucket_seconds:
            params.append(bucket_seconds)
            bucket = f"floor(time / ${len(params)}) * ${len(params)}"
        else:
            bucket = "NULL::float8"
        sql = (
            f"SELECT {bucket} AS b, {expression} AS v, COUNT(*) AS n FROM {self._events} {where} "
            "GROUP BY 1, 2 ORDER BY 1, 2"
        )
        rows = await self._fetch(sql, *params)
        return [(None if r["b"] is None else float(r["b"]), str(r["v"]), int(r["n"])) for r in rows]

    async def tail(self, n: int) -> tuple[list[AuditEvent], str]:
        rows = await self._fetch(
            f"SELECT id, replica, seq, prev_hash, hash, content FROM {self._events} ORDER BY id DESC LIMIT $1",
            n,
        )
        rows.reverse()
        return [_event(r) for r in rows], str(rows[-1]["id"]) if rows else "0"

    async def read_after(self, cursor: str, limit: int = 1000) -> tuple[list[AuditEvent], str]:
        rows = await self._fetch(
            f"SELECT id, replica, seq, prev_hash, hash, content FROM {self._events} WHERE id > $1 "
            "ORDER BY id LIMIT $2",
            int(cursor or 0),
            limit,
        )
        return [_event(r) for r in rows], str(rows[-1]["id"]) if rows else cursor

    async def replicas(self) -> list[str]:
        rows = await self._fetch(
            f"SELECT replica FROM {self._heads} UNION SELECT DISTINCT replica FROM {self._events} "
            f"UNION SELECT replica FROM {self._anchors} ORDER BY 1"
        )
        return [r["replica"] for r in rows]

    async def scan(self, replica: str) -> AsyncIterator[StoredEvent]:
        after = -1
        sql = (
            f"SELECT id, replica, seq, prev_hash, hash, content, {_COLUMNS} FROM {self._events} "
            "WHERE replica = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        )
        while True:
            rows = await self._fetch(sql, replica, after, SCAN_PAGE)
            for row in rows:
                content = row["content"].encode()
                yield StoredEvent(
                    replica=row["replica"],
                    seq=row["seq"],
                    prev_hash=row["prev_hash"],
                    hash=row["hash"],
                    content=content,
                    mismatch=column_mismatch(content, [row[c] for c in INDEXED_COLUMNS]),
                    position=f"{self._events} id {row['id']}",
                )
            if len(rows) < SCAN_PAGE:
                return
            after = rows[-1]["seq"]

    async def anchors(self, replica: str) -> list[Anchor]:
        rows = await self._fetch(
            f"SELECT {_ANCHOR_COLUMNS} FROM {self._anchors} WHERE replica = $1 ORDER BY seq, kind", replica
        )
        return [Anchor.from_dict(dict(r)) for r in rows]

    async def head(self, replica: str) -> ChainHead | None:
        rows = await self._fetch(f"SELECT seq, hash FROM {self._heads} WHERE replica = $1", replica)
        return ChainHead(replica=replica, seq=rows[0]["seq"], hash=rows[0]["hash"]) if rows else None
