"""The recorder through a real gateway: strict mode gates and refuses, relaxed mode counts, nothing is lost."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client, MCPError

from bastion.audit.recorder import AuditRecorder
from bastion.audit.sinks import AuditQuery
from bastion.audit.sinks.sqlite import SqliteAuditSink
from bastion.audit.verify import verify
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.testing import capture_audit, client_transport, running_gateway
from tests.audit.conftest import Unpluggable, write_events
from tests.servers import calc

pytestmark = pytest.mark.anyio


def unpluggable(tmp_path: Path) -> Unpluggable:
    return Unpluggable(SqliteAuditSink(path=tmp_path / "audit.db"))


async def test_strict_mode_releases_a_reply_only_after_its_event_is_committed(tmp_path: Path) -> None:
    sink = unpluggable(tmp_path)
    recorder = AuditRecorder([sink], replica="r1")  # type: ignore[list-item]
    async with running_gateway({"calc": calc.build()}, observers=[recorder]) as gw:
        async with Client(client_transport(gw), mode="legacy") as client:
            await client.list_tools()
            await recorder.flush()  # session_start and the list are committed; now hold the next commit
            sink.gate = anyio.Event()
            sink.entered = anyio.Event()
            replies: list[object] = []

            async def call() -> None:
                replies.append(await client.call_tool("calc__add", {"a": 1, "b": 2}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                with anyio.fail_after(5):
                    await sink.entered.wait()  # the event is being committed...
                assert replies == []  # ...and the reply is held until it is
                sink.gate.set()
            assert len(replies) == 1
            sink.gate = None
    await recorder.aclose()
    (event,) = await sink.search(_all(kind="exchange", method="tools/call"))
    assert (event.method, event.server, event.target, event.outcome) == ("tools/call", "calc", "add", "allow")


async def test_strict_mode_refuses_calls_while_the_store_is_down_and_loses_nothing(tmp_path: Path) -> None:
    sink = unpluggable(tmp_path)
    recorder = AuditRecorder([sink], replica="r1", commit_timeout_seconds=5)  # type: ignore[list-item]
    async with running_gateway({"calc": calc.build()}, observers=[recorder]) as gw:
        async with Client(client_transport(gw), mode="legacy") as client:
            assert (await client.call_tool("calc__add", {"a": 1, "b": 1})).structured_content == {"result": 2}
            sink.plugged = False
            for _ in range(3):
                with pytest.raises(MCPError) as info:
                    await client.call_tool("calc__add", {"a": 2, "b": 2})
                assert (info.value.code, info.value.data["reason"]) == (-31020, "audit_unavailable")
            assert not recorder.healthy and recorder.queue_depth == 3
            sink.plugged = True
            with anyio.fail_after(10):
                while True:  # the first calls after the outage may still meet the backoff
                    try:
                        await client.call_tool("calc__add", {"a": 3, "b": 3})
                        break
                    except MCPError as exc:
                        assert exc.code == -31020
            assert recorder.healthy and recorder.queue_depth == 0
    await recorder.aclose()
    events = await sink.search(_all(order="asc", kind="exchange", method="tools/call"))
    assert [e.arguments for e in events][:4] == [{"a": 1, "b": 1}] + [{"a": 2, "b": 2}] * 3
    assert recorder.lost == 0
    assert (await verify(sink)).ok


async def test_relaxed_mode_passes_calls_counts_drops_and_exposes_the_queue(tmp_path: Path) -> None:
    sink = unpluggable(tmp_path)
    recorder = AuditRecorder([sink], replica="r1", mode="relaxed", queue_size=4)  # type: ignore[list-item]
    async with running_gateway({"calc": calc.build()}, observers=[recorder]) as gw:
        async with Client(client_transport(gw), mode="legacy") as client:
            await client.call_tool("calc__add", {"a": -1, "b": 0})
            await recorder.flush()
            lost_before = recorder.lost  # the handshake's burst of events may overflow a queue of 4 already
            sink.plugged = False
            for i in range(10):
                assert (await client.call_tool("calc__add", {"a": i, "b": 0})).structured_content == {
                    "result": i
                }
            await recorder.flush()
            assert (recorder.lost - lost_before, recorder.queue_depth, recorder.healthy) == (6, 4, False)
            sink.plugged = True
            with anyio.fail_after(10):
                while recorder.queue_depth:
                    await recorder.flush()
                    await anyio.sleep(0.05)  # pacing only: the loop's exit condition is the drained backlog
    await recorder.aclose()
    events = await sink.search(_all(order="asc", kind="exchange", method="tools/call"))
    assert len([e for e in events if e.arguments["a"] >= 0]) == 4
    assert (await verify(sink)).ok  # the dropped events never got a place in the chain


async def test_concurrent_calls_share_commits(tmp_path: Path) -> None:
    sink = unpluggable(tmp_path)
    recorder = AuditRecorder([sink], replica="r1")  # type: ignore[list-item]
    async with running_gateway({"calc": calc.build()}, observers=[recorder]) as gw:
        async with Client(client_transport(gw), mode="legacy") as client:
            await client.list_tools()
            await recorder.flush()
            before = sink.writes
            sink.gate = anyio.Event()  # hold the first commit so the others pile up behind it
            async with anyio.create_task_group() as tg:
                for i in range(20):
                    tg.start_soon(client.call_tool, "calc__add", {"a": i, "b": 1})
                with anyio.fail_after(5):
                    while len(recorder._queue) < 19:
                        await anyio.sleep(0.01)
                sink.gate.set()
            commits = sink.writes - before
    await recorder.aclose()
    assert len(await sink.search(_all(kind="exchange", method="tools/call"))) == 20
    assert commits == 2  # the held one, then the 19 that queued behind it in one transaction


async def test_notices_are_recorded_and_never_raise(tmp_path: Path) -> None:
    sink = unpluggable(tmp_path)
    recorder = AuditRecorder([sink], replica="r1", commit_timeout_seconds=0.5)  # type: ignore[list-item]
    await recorder.on_notice(
        Notice(
            kind=NoticeKind.UPSTREAM_STATE,
            server="calc",
            severity="warning",
            detail={"state": "down", "restarts": 1},
        )
    )
    sink.plugged = False
    await recorder.on_notice(Notice(kind=NoticeKind.ALERT, severity="critical", detail={"rule": "burst"}))
    sink.plugged = True
    await recorder.aclose()
    events = await sink.search(_all(order="asc"))
    assert [(e.kind, e.server, e.severity) for e in events] == [
        ("upstream_state", "calc", "warning"),
        ("alert", "", "critical"),
    ]


async def test_closing_counts_what_could_not_be_written(tmp_path: Path) -> None:
    sink = unpluggable(tmp_path)
    recorder = AuditRecorder([sink], replica="r1", mode="relaxed")  # type: ignore[list-item]
    sink.plugged = False
    await recorder.on_notice(Notice(kind=NoticeKind.POLICY_RELOAD))
    await recorder.aclose()
    assert recorder.lost == 1


async def test_session_start_and_end_are_recorded_with_the_client(tmp_path: Path) -> None:
    sink = SqliteAuditSink(path=tmp_path / "audit.db")
    recorder = AuditRecorder([sink], replica="r1")
    async with running_gateway({"calc": calc.build()}, observers=[recorder]) as gw:
        async with Client(client_transport(gw), mode="legacy") as client:
            await client.list_tools()
    await recorder.aclose()
    async with SqliteAuditSink(path=tmp_path / "audit.db") as reader:
        events = await reader.search(_all(order="asc"))
    seen = [(e.kind, e.method or e.detail.get("method", "")) for e in events if e.kind != "upstream_state"]
    assert sorted(seen) == [
        ("exchange", "initialize"),  # answered by Bastion itself, recorded all the same
        ("exchange", "tools/list"),
        ("notification", "notifications/initialized"),
        ("session_end", ""),
        ("session_start", ""),
    ]
    assert seen[-1] == ("session_end", "")
    assert events[0].kind == "upstream_state" and events[0].server == "calc"  # it connected first
    assert next(e for e in events if e.kind == "session_start").client_name  # the SDK's clientInfo.name


def _all(order: str = "desc", kind: str | None = None, method: str | None = None) -> AuditQuery:
    tool = "calc__add" if method == "tools/call" else None
    return AuditQuery(kind=kind, tool=tool, limit=1000, order="asc" if order == "asc" else "desc")


async def test_a_refused_reply_is_still_seen_by_every_later_observer(tmp_path: Path) -> None:
    sink = unpluggable(tmp_path)
    recorder = AuditRecorder([sink], replica="r1")  # type: ignore[list-item]
    later = capture_audit()  # stands for metrics and the rate limiter, which must see every exchange
    async with running_gateway({"calc": calc.build()}, observers=[recorder, later]) as gw:
        async with Client(client_transport(gw), mode="legacy") as client:
            sink.plugged = False
            with pytest.raises(MCPError):
                await client.call_tool("calc__add", {"a": 1, "b": 1})
    sink.plugged = True
    await recorder.aclose()
    (call,) = [e for e in later.of_kind("exchange") if e.method == "tools/call"]
    assert call.outcome == "allow" and call.result["structuredContent"] == {"result": 2}


async def test_retention_prunes_old_events_on_open_and_the_chain_still_verifies(tmp_path: Path) -> None:
    async with SqliteAuditSink(path=tmp_path / "audit.db") as sink:
        await write_events(sink, 10)  # from November 2023
    recorder = AuditRecorder([SqliteAuditSink(path=tmp_path / "audit.db")], replica="r1", retention_days=30)
    await recorder.open()
    await recorder.on_notice(Notice(kind=NoticeKind.POLICY_RELOAD))
    await recorder.aclose()
    async with SqliteAuditSink(path=tmp_path / "audit.db") as sink:
        events = await sink.search(_all(order="asc"))
        assert [(e.kind, e.seq) for e in events] == [("policy_reload", 11)]
        report = await verify(sink, allow_unsigned=True)  # no key: the prune anchor is unsigned
    assert report.ok and report.chains[0].first_seq == 11
