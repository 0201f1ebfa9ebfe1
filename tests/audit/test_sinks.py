"""Every sink: queries, tail cursors, idempotent retries, several writers on one chain; JSON Lines rotation and
torn lines; PostgreSQL schema in its own database (integration)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from bastion.audit import query
from bastion.audit.config import JsonlSinkConfig, PostgresSinkConfig, SqliteSinkConfig
from bastion.audit.sinks import EncodedEvent, Sink, build_sink
from bastion.audit.sinks.jsonl import JsonlAuditSink
from bastion.audit.verify import verify
from tests.audit.conftest import event, write_events

pytestmark = pytest.mark.anyio


async def test_search_filters_by_principal_server_tool_decision_and_time(
    sink_and_tamper: tuple[Sink, Any],
) -> None:
    sink, _ = sink_and_tamper
    await write_events(sink, 30)
    found = await query.search(sink, principal="bob", limit=1000)
    assert {e.principal for e in found} == {"bob"} and len(found) == 10
    assert [e.seq for e in found] == sorted((e.seq for e in found), reverse=True)  # newest first
    adds = await query.search(sink, tool="calc__add", limit=1000, order="asc")
    assert len(adds) == 15 and {e.target for e in adds} == {"add"} and adds[0].time < adds[-1].time
    assert len(await query.search(sink, tool="add", server="calc", limit=1000)) == 15
    assert await query.search(sink, tool="other__add") == []
    denied = await query.search(sink, decision="deny", since=1_700_000_010.0, until=1_700_000_025.0)
    assert [e.seq for e in denied] == [20, 15, 10]
    page = await query.search(sink, limit=5, offset=5, order="asc")
    assert [e.seq for e in page] == [6, 7, 8, 9, 10]


async def test_get_returns_one_event_by_id(sink_and_tamper: tuple[Sink, Any]) -> None:
    sink, _ = sink_and_tamper
    ids = await write_events(sink, 5)
    got = await query.get(sink, ids[2])
    assert got is not None and (got.event_id, got.seq, got.replica, got.arguments) == (
        ids[2],
        3,
        "r1",
        {"a": 3, "b": 2},
    )
    assert await query.get(sink, "nope") is None


async def test_stats_count_per_window_outcome_principal_and_tool(sink_and_tamper: tuple[Sink, Any]) -> None:
    sink, _ = sink_and_tamper
    await write_events(sink, 30)  # times 1_700_000_001 .. 1_700_000_030
    stats = await query.stats(sink, since=1_700_000_000.0, until=1_700_000_031.0, bucket_seconds=10)
    assert (stats.total, stats.outcomes) == (30, {"allow": 24, "deny": 6})
    assert [(b.start, b.total) for b in stats.buckets] == [
        (1_700_000_000.0, 9),
        (1_700_000_010.0, 10),
        (1_700_000_020.0, 10),
        (1_700_000_030.0, 1),
    ]
    assert stats.top_principals == [("alice", 20), ("bob", 10)]
    assert stats.top_tools == [("calc__add", 15), ("calc__echo", 15)]


async def test_tail_then_read_after_follows_new_events(sink_and_tamper: tuple[Sink, Any]) -> None:
    sink, _ = sink_and_tamper
    await write_events(sink, 12)
    last, cursor = await sink.tail(3)
    assert [e.seq for e in last] == [10, 11, 12]
    assert (await sink.read_after(cursor))[0] == []
    await write_events(sink, 10, start=100)
    new, cursor = await sink.read_after(cursor, limit=4)
    more, cursor = await sink.read_after(cursor)
    assert [e.seq for e in new + more] == list(range(13, 23))


async def test_a_retried_batch_is_not_written_twice(sink_and_tamper: tuple[Sink, Any]) -> None:
    sink, _ = sink_and_tamper
    batch = [EncodedEvent.of(event(i)) for i in range(3)]
    await sink.write("r1", batch)
    head = await sink.write("r1", [*batch, EncodedEvent.of(event(9))])  # the first three again, plus one new
    assert head.seq == 4 and (await verify(sink)).ok


async def test_two_writers_on_one_chain_keep_it_valid(tmp_path: Path, pg_url_or_none: str | None) -> None:
    """Two `bastion stdio` on one host share a replica id and a store; their chain must stay one chain."""
    configs: list[Any] = [
        SqliteSinkConfig(path=str(tmp_path / "a.db")),
        JsonlSinkConfig(type="jsonl", path=str(tmp_path / "a.jsonl"), max_bytes=20_000),
    ]
    if pg_url_or_none:
        configs.append(PostgresSinkConfig(type="postgres", url=pg_url_or_none))  # type: ignore[arg-type]
    for config in configs:
        first, second = build_sink(config), build_sink(config)
        await first.open()
        await second.open()
        try:
            async with anyio.create_task_group() as tg:
                for n, writer in enumerate((first, second, first, second)):
                    tg.start_soon(functools.partial(write_events, writer, 40, start=1000 * (n + 1), batch=3))
            report = await verify(first)
            assert report.ok, report.to_dict()
            assert report.chains[0].last_seq == 160
        finally:
            await first.aclose()
            await second.aclose()


@pytest.fixture(params=[None, pytest.param("pg", marks=pytest.mark.integration)])
async def pg_url_or_none(request: pytest.FixtureRequest) -> Any:
    if request.param is None:
        yield None
        return
    from tests.audit.conftest import pg_database

    async with pg_database() as url:
        yield url


async def test_jsonl_rotates_by_size_and_reads_across_files(tmp_path: Path) -> None:
    sink = JsonlAuditSink(JsonlSinkConfig(type="jsonl", max_bytes=2048), path=tmp_path / "audit.jsonl")
    async with sink:
        await write_events(sink, 40, batch=2)
        files = sink.files()
        assert len(files) > 5 and files[0].name == "audit.000001.jsonl"
        assert all(p.stat().st_size < 2048 + 2000 for p in files)
        assert len(await query.search(sink, limit=1000)) == 40
        assert (await verify(sink)).ok


async def test_jsonl_cuts_a_torn_last_line_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    async with JsonlAuditSink(path=path) as sink:
        await write_events(sink, 5)
    with path.open("ab") as f:
        f.write(b'{"event":{"event_id":"half-writt')  # the process died in the middle of a write
    async with JsonlAuditSink(path=path) as sink:
        assert len(await query.search(sink)) == 5  # readers skip the torn line
        await write_events(sink, 3, start=10)
        assert (await verify(sink)).ok and (await verify(sink)).chains[0].last_seq == 8


@pytest.mark.integration
async def test_postgres_creates_its_schema_and_tables_in_a_schema_of_our_choice(pg_url: str) -> None:
    config = PostgresSinkConfig.model_validate(
        {"type": "postgres", "url": pg_url, "schema": "audit_x", "table_prefix": "trail"}
    )
    async with build_sink(config) as sink:  # type: ignore[attr-defined]
        await write_events(sink, 3)
    conn = await asyncpg.connect(pg_url)
    try:
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'audit_x'")
        }
        assert tables == {"trail_events", "trail_heads", "trail_anchors"}
        assert await conn.fetchval("SELECT count(*) FROM audit_x.trail_events") == 3
    finally:
        await conn.close()


async def test_postgres_identifiers_are_validated_by_the_config() -> None:
    with pytest.raises(ValueError, match="lowercase"):
        PostgresSinkConfig.model_validate(
            {"type": "postgres", "url": "postgresql://x/y", "schema": "a; DROP"}
        )
