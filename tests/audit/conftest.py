"""Audit test fixtures: each sink kind (SQLite, JSON Lines, and a real PostgreSQL database of its own), a tamperer
per sink that edits storage the way an intruder would, and a sink wrapper that can be unplugged or held."""

from __future__ import annotations

import contextlib
import errno
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import orjson
import pytest

from bastion.audit.chain import ChainHead, link_hash
from bastion.audit.config import JsonlSinkConfig, PostgresSinkConfig
from bastion.audit.event import AuditEvent
from bastion.audit.sinks import EncodedEvent, Sink
from bastion.audit.sinks.jsonl import JsonlAuditSink
from bastion.audit.sinks.postgres import PostgresAuditSink
from bastion.audit.sinks.sqlite import SqliteAuditSink

PG_ADMIN_URL = "postgresql://postgres@localhost:5432/test"


def event(i: int, **fields: Any) -> AuditEvent:
    """A plausible exchange event, numbered."""
    values: dict[str, Any] = {
        "event_id": f"ev-{i:05d}-{secrets.token_hex(4)}",
        "kind": "exchange",
        "time": 1_700_000_000.0 + i,
        "session_id": "s1",
        "principal": "alice" if i % 3 else "bob",
        "roles": ("dev",),
        "server": "calc",
        "method": "tools/call",
        "target": "add" if i % 2 else "echo",
        "arguments": {"a": i, "b": 2},
        "outcome": "deny" if i % 5 == 0 else "allow",
        "latency_ms": 1.5,
        **fields,
    }
    return AuditEvent(**values)


async def write_events(
    sink: Sink, n: int, *, replica: str = "r1", start: int = 1, batch: int = 7
) -> list[str]:
    """Write n numbered events in batches; returns their ids in order."""
    events = [EncodedEvent.of(event(i)) for i in range(start, start + n)]
    for i in range(0, n, batch):
        await sink.write(replica, events[i : i + batch])
    return [e.event_id for e in events]


@contextlib.asynccontextmanager
async def pg_database() -> AsyncIterator[str]:
    """A fresh database with a random name on the local server, dropped afterwards."""
    name = f"bastion_audit_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(PG_ADMIN_URL)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@localhost:5432/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with pg_database() as url:
        yield url


class SqlTamper:
    """Edits the events table directly (SQLite file or PostgreSQL), as someone with database access would."""

    def __init__(self, run: Any, table: str) -> None:
        self._run = run
        self.t = table

    async def rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = await self._run(f"SELECT * FROM {self.t} ORDER BY seq", fetch=True)
        return rows

    async def edit(self, seq: int) -> None:
        await self._run(
            f"UPDATE {self.t} SET content = replace(content, '\"b\":2', '\"b\":3') WHERE seq = {seq}"
        )

    async def edit_column(self, seq: int) -> None:
        await self._run(f"UPDATE {self.t} SET principal = 'mallory' WHERE seq = {seq}")

    async def delete(self, seq: int) -> None:
        await self._run(f"DELETE FROM {self.t} WHERE seq = {seq}")

    async def insert(self, seq: int, *, forged_id: str, rehash: bool) -> None:
        """Insert a copy of event `seq` at `seq`, renumbering the rest (optionally with a correct hash)."""
        rows = await self.rows()
        source = next(r for r in rows if r["seq"] == seq)
        previous = next((r["hash"] for r in rows if r["seq"] == seq - 1), "0" * 64)
        content = source["content"].replace(source["event_id"], forged_id)
        digest = link_hash(source["replica"], seq, previous, content.encode()) if rehash else "f" * 64
        await self._run(f"UPDATE {self.t} SET seq = seq + 1000000 WHERE seq >= {seq}")
        await self._run(f"UPDATE {self.t} SET seq = seq - 999999 WHERE seq >= 1000000")
        columns = "replica, seq, prev_hash, hash, event_id, kind, time, session_id, principal, server, target, method, outcome, content"
        values = [
            source["replica"],
            seq,
            previous,
            digest,
            forged_id,
            source["kind"],
            source["time"],
            source["session_id"],
            source["principal"],
            source["server"],
            source["target"],
            source["method"],
            source["outcome"],
            content,
        ]
        literal = ", ".join(
            str(v) if isinstance(v, int | float) else "'" + v.replace("'", "''") + "'" for v in values
        )
        await self._run(f"INSERT INTO {self.t} ({columns}) VALUES ({literal})")

    async def swap(self, seq: int) -> None:
        """Exchange the positions of events `seq` and `seq + 1`."""
        await self._run(f"UPDATE {self.t} SET seq = -1 WHERE seq = {seq}")
        await self._run(f"UPDATE {self.t} SET seq = {seq} WHERE seq = {seq + 1}")
        await self._run(f"UPDATE {self.t} SET seq = {seq + 1} WHERE seq = -1")


class FileTamper:
    """Edits the JSON Lines files, as someone with file access would."""

    def __init__(self, sink: JsonlAuditSink) -> None:
        self.sink = sink

    def _load(self) -> list[tuple[Path, list[bytes]]]:
        return [(p, p.read_bytes().splitlines(keepends=True)) for p in self.sink.files()]

    def _apply(self, seq: int, change: Any) -> None:
        for path, lines in self._load():
            for i, line in enumerate(lines):
                if orjson.loads(line)["seq"] == seq:
                    lines[i : i + 1] = change(line)
                    path.write_bytes(b"".join(lines))
                    return
        raise AssertionError(f"no line with seq {seq}")

    async def rows(self) -> list[dict[str, Any]]:
        out = []
        for _, lines in self._load():
            for line in lines:
                parsed = orjson.loads(line)
                out.append({**parsed, "event_id": parsed["event"]["event_id"]})
        return out

    async def edit(self, seq: int) -> None:
        self._apply(seq, lambda line: [line.replace(b'"b":2', b'"b":3')])

    async def edit_column(self, seq: int) -> None:
        self._apply(
            seq, lambda line: [line.replace(b'"alice"', b'"mallory"').replace(b'"bob"', b'"mallory"')]
        )

    async def delete(self, seq: int) -> None:
        self._apply(seq, lambda line: [])

    async def insert(self, seq: int, *, forged_id: str, rehash: bool) -> None:
        rows = {r["seq"]: r for r in await self.rows()}
        previous = rows[seq - 1]["hash"] if seq > 1 else "0" * 64

        def forge(line: bytes) -> list[bytes]:
            parsed = orjson.loads(line)
            parsed["event"]["event_id"] = forged_id
            parsed["prev_hash"] = previous
            content = orjson.dumps(parsed["event"], option=orjson.OPT_SORT_KEYS)
            parsed["hash"] = link_hash(parsed["replica"], seq, previous, content) if rehash else "f" * 64
            return [orjson.dumps(parsed) + b"\n", line]

        self._apply(seq, forge)

    async def swap(self, seq: int) -> None:
        for path, lines in self._load():
            seqs = [orjson.loads(line)["seq"] for line in lines]
            if seq in seqs and seq + 1 in seqs:
                i = seqs.index(seq)
                lines[i], lines[i + 1] = lines[i + 1], lines[i]
                path.write_bytes(b"".join(lines))
                return
        raise AssertionError("events not in one file")


@pytest.fixture(params=["sqlite", "jsonl", pytest.param("postgres", marks=pytest.mark.integration)])
async def sink_and_tamper(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Sink, Any]]:
    """The same behaviour tests run on each sink kind."""
    if request.param == "sqlite":
        path = tmp_path / "audit.db"

        async def run_sqlite(sql: str, fetch: bool = False) -> Any:
            def go() -> Any:
                db = sqlite3.connect(path, isolation_level=None)
                db.row_factory = sqlite3.Row
                try:
                    cursor = db.execute(sql)
                    return [dict(r) for r in cursor.fetchall()] if fetch else None
                finally:
                    db.close()

            return await anyio.to_thread.run_sync(go)

        async with SqliteAuditSink(path=path) as sqlite_sink:
            yield sqlite_sink, SqlTamper(run_sqlite, "audit_events")
        return
    if request.param == "jsonl":
        async with JsonlAuditSink(
            JsonlSinkConfig(type="jsonl", max_bytes=4096), path=tmp_path / "audit.jsonl"
        ) as j:
            yield j, FileTamper(j)
        return
    async with pg_database() as url:
        config = PostgresSinkConfig(type="postgres", url=url)  # type: ignore[arg-type]
        async with PostgresAuditSink(config) as pg:
            conn = await asyncpg.connect(url)

            async def run_pg(sql: str, fetch: bool = False) -> Any:
                if fetch:
                    return [dict(r) for r in await conn.fetch(sql)]
                await conn.execute(sql)
                return None

            try:
                yield pg, SqlTamper(run_pg, "bastion_audit_events")
            finally:
                await conn.close()


class Unpluggable:
    """A real sink that can be unplugged (writes fail like a dead database) or held (writes wait on a gate)."""

    def __init__(self, inner: Sink) -> None:
        self.inner = inner
        self.name = inner.name
        self.plugged = True
        self.writes = 0
        self.entered = anyio.Event()
        self.gate: anyio.Event | None = None

    async def open(self) -> None:
        if not self.plugged:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")
        await self.inner.open()

    async def write(self, replica: str, events: Sequence[EncodedEvent]) -> ChainHead:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if not self.plugged:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "refused")
        self.writes += 1
        return await self.inner.write(replica, events)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def now() -> float:
    return time.time()
