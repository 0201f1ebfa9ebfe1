"""The live feed: a bounded ring buffer, overview counters, and fan-out that never waits for a slow reader."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from bastion.audit.event import EXCHANGE_KIND
from bastion.pipeline.approvals import PendingApproval
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.web.api import sse_events
from bastion.web.feed import LiveFeed

pytestmark = pytest.mark.anyio

NOW = 1_800_000_000.0


def call(i: int, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": f"e{i}",
        "kind": EXCHANGE_KIND,
        "time": NOW,
        "principal": "alice",
        "server": "calc",
        "method": "tools/call",
        "target": "add",
        "outcome": "allow",
        "decisions": [],
    }
    return event | fields


def finding(kind: str = "github_token") -> dict[str, Any]:
    return {"stage": "guard", "findings": [{"detector": "secrets", "type": kind, "path": "$.text"}]}


async def test_the_buffer_keeps_only_the_newest_items_and_forgets_evicted_ids() -> None:
    feed = LiveFeed(capacity=3, clock=lambda: NOW)
    for i in range(5):
        feed.record(call(i))
    assert [item.id for item in feed.recent()] == ["e4", "e3", "e2"]
    assert feed.get("e1") is None and feed.get("e4") is not None


async def test_filters_match_principal_server_tool_and_decision_exactly() -> None:
    feed = LiveFeed(clock=lambda: NOW)
    feed.record(call(1, principal="bob"))
    feed.record(call(2, target="echo", outcome="deny"))
    feed.record(call(3))
    assert [i.id for i in feed.recent({"principal": "bob"})] == ["e1"]
    assert [i.id for i in feed.recent({"tool": "echo", "outcome": "deny"})] == ["e2"]
    assert [i.id for i in feed.recent({"server": "calc", "tool": "add"}, after=1)] == ["e3"]
    assert feed.recent({"principal": "bo"}) == []


async def test_overview_counts_calls_denials_findings_per_minute_and_ranks_tools_and_principals() -> None:
    feed = LiveFeed(clock=lambda: NOW)
    feed.record(call(1))
    feed.record(call(2, target="echo", outcome="deny", decisions=[finding(), finding("stripe_key")]))
    feed.record(call(3, target="echo", principal="bob"))
    feed.record(call(4, server="", method="tools/list", target=""))  # answered by Bastion itself
    overview = feed.overview()
    assert (overview["calls"], overview["denials"], overview["findings"]) == (3, 1, 2)
    assert overview["series"][-1] == {"t": int(NOW // 60) * 60, "calls": 3, "denials": 1, "findings": 2}
    assert len(overview["series"]) == 60
    assert overview["top_tools"] == [{"name": "calc__echo", "calls": 2}, {"name": "calc__add", "calls": 1}]
    assert overview["top_principals"][0] == {"name": "alice", "calls": 2}


async def test_warnings_and_tool_changes_become_alerts_but_routine_notices_do_not() -> None:
    feed = LiveFeed(clock=lambda: NOW)
    await feed.on_notice(Notice(kind=NoticeKind.SESSION_START, principal="alice"))
    await feed.on_notice(Notice(kind=NoticeKind.UPSTREAM_STATE, server="calc", severity="warning"))
    await feed.on_notice(Notice(kind=NoticeKind.TOOL_CHANGED, server="shifty", target="weather"))
    alerts = feed.overview()["alerts"]
    assert [a["kind"] for a in alerts] == ["tool_changed", "upstream_state"]
    assert feed.stats.calls == 0


async def test_a_reader_that_falls_behind_is_dropped_and_publishing_never_waits() -> None:
    feed = LiveFeed(subscriber_queue=4, clock=lambda: NOW)
    slow = feed.subscribe()
    fast = feed.subscribe({"principal": "bob"})
    # Publishing is synchronous: ten items never block on a reader that is not reading.
    with anyio.fail_after(1):
        for i in range(10):
            feed.record(call(i))
    assert slow.dropped and feed.subscribers == 1
    assert not fast.dropped
    assert await slow.next(0.01) == []
    feed.record(call(99, principal="bob"))
    [(name, data)] = await fast.next(1)
    assert name == "call" and data["id"] == "e99"


async def test_approval_changes_reach_every_reader_whatever_its_filter() -> None:
    feed = LiveFeed(clock=lambda: NOW)
    reader = feed.subscribe({"kind": "approval"})
    feed.record(call(1))  # filtered out
    item = PendingApproval(
        id="a1",
        question="?",
        principal="p",
        server="calc",
        target="echo",
        method="tools/call",
        session_id="s",
    )
    feed.on_approval("pending", item)
    [(name, data)] = await reader.next(1)
    assert name == "approval" and data["change"] == "pending" and data["id"] == "a1"


async def test_the_sse_stream_replays_after_the_last_event_id_then_streams_live_items_once() -> None:
    feed = LiveFeed(clock=lambda: NOW)
    for i in range(1, 4):
        feed.record(call(i))
    stream = sse_events(feed, {}, after=1, keepalive=0.05)
    chunks: list[bytes] = []
    with anyio.fail_after(5):
        chunks.append(await anext(stream))  # retry hint
        chunks.append(await anext(stream))  # e2 (seq 2)
        chunks.append(await anext(stream))  # e3
        feed.record(call(4))
        chunks.append(await anext(stream))
        chunks.append(await anext(stream))  # idle: a keep-alive comment
    await stream.aclose()
    assert chunks[0] == b"retry: 3000\n\n"
    assert [c.split(b"\n")[0] for c in chunks[1:4]] == [b"id: 2", b"id: 3", b"id: 4"]
    assert b'"id":"e4"' in chunks[3]
    assert chunks[4] == b": keep-alive\n\n"
    assert feed.subscribers == 0


async def test_a_dropped_sse_reader_is_told_to_resync_and_its_stream_ends() -> None:
    feed = LiveFeed(subscriber_queue=2, clock=lambda: NOW)
    stream = sse_events(feed, {}, after=None, keepalive=5)
    with anyio.fail_after(5):
        assert await anext(stream) == b"retry: 3000\n\n"
        for i in range(5):
            feed.record(call(i))
        last = await anext(stream)
        assert last.startswith(b"event: resync")
        with pytest.raises(StopAsyncIteration):
            await anext(stream)
