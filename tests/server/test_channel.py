"""Which stream each message of a handshake-era session goes on, event ids, replay, and bounded outlets."""

from __future__ import annotations

import asyncio

import anyio
import orjson
import pytest

from bastion.server import reply as reply_module
from bastion.server.channel import HttpChannel, parse_event_id
from bastion.server.reply import KEEPALIVE_FRAME, Mode, Outlet, Reply, send_sse

pytestmark = pytest.mark.anyio


def _progress(n: int) -> dict:
    return {
        "jsonrpc": "2.0",
        "method": "notifications/progress",
        "params": {"progressToken": 1, "progress": n},
    }


def _result(request_id: int) -> dict:
    return {"jsonrpc": "2.0", "id": request_id, "result": {}}


def _data(chunk: bytes) -> list[dict]:
    return [
        orjson.loads(line[6:]) for line in chunk.split(b"\n") if line.startswith(b"data: ") and len(line) > 6
    ]


async def test_a_response_that_comes_first_makes_a_json_reply_and_no_event():
    channel = HttpChannel(owner="alice", buffer_size=8)
    reply = channel.open_reply([1])
    await channel.send(_result(1), 1)
    assert await reply.decided() is Mode.JSON
    assert orjson.loads(reply.json_body()) == _result(1)
    assert channel.last_seq == 0 and not channel.in_flight(1)


async def test_anything_before_the_response_makes_an_sse_reply_with_session_unique_ids():
    channel = HttpChannel(owner="alice", buffer_size=8)
    first, second = channel.open_reply([1]), channel.open_reply([2])
    await channel.send(_progress(1), 1)
    await channel.send(_progress(1), 2)
    await channel.send(_result(1), 1)
    assert first.mode is Mode.SSE and first.outlet is not None and first.outlet.finished
    chunk = await first.outlet.pull()
    assert chunk is not None
    ids = [line.split(b": ")[1].decode() for line in chunk.split(b"\n") if line.startswith(b"id: ")]
    assert [parse_event_id(i) for i in ids] == [(first.number, 1), (first.number, 3)]
    assert second.outlet is not None and b"id: %d-2" % second.number in (await second.outlet.pull() or b"")


async def test_session_level_messages_wait_for_a_get_stream_and_then_flow_to_it():
    channel = HttpChannel(owner="alice", buffer_size=8)
    await channel.send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}, None)
    outlet = channel.attach_standalone(None)
    assert _data(await outlet.pull() or b"")[0]["method"] == "notifications/tools/list_changed"
    await channel.send({"jsonrpc": "2.0", "method": "notifications/prompts/list_changed"}, None)
    assert _data(await outlet.pull() or b"")[0]["method"] == "notifications/prompts/list_changed"
    channel.detach(outlet)
    again = channel.attach_standalone(None)  # nothing new: nothing is delivered twice
    assert again.finished is False and not again._frames


async def test_a_late_message_for_a_finished_request_never_lands_on_another_stream():
    channel = HttpChannel(owner="alice", buffer_size=8)
    reply = channel.open_reply([1])
    await channel.send(_result(1), 1)
    outlet = channel.attach_standalone(None)
    await channel.send(_result(1), 1)  # a duplicate response: dropped
    assert not outlet._frames and reply.mode is Mode.JSON


async def test_the_replay_buffer_is_bounded_and_resume_skips_other_streams():
    channel = HttpChannel(owner="alice", buffer_size=3)
    reply = channel.open_reply([1])
    for n in range(1, 6):
        await channel.send(_progress(n), 1)
    await channel.send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}, None)
    await channel.send(_result(1), 1)
    resumed = channel.resume(reply.number, 0)
    assert resumed is not None and resumed.finished
    messages = _data(await resumed.pull() or b"")
    assert [m.get("params", {}).get("progress") for m in messages] == [5, None]  # 4 fell out; no list_changed
    assert messages[-1]["id"] == 1
    assert channel.resume(99, 0) is None


async def test_closing_the_channel_releases_every_waiting_reply():
    channel = HttpChannel(owner="alice", buffer_size=8)
    reply = channel.open_reply([1])
    outlet = channel.attach_standalone(None)
    channel.close()
    assert await reply.decided() is Mode.PENDING and reply.closed
    assert outlet.finished and await outlet.pull() is None


async def test_a_batch_reply_is_an_array_even_of_one():
    reply = Reply(1, 2, batch=True)
    reply.add(b'{"id":1}', True)
    assert reply.mode is Mode.PENDING
    reply.add(b'{"id":2}', True)
    assert reply.mode is Mode.JSON and orjson.loads(reply.json_body()) == [{"id": 1}, {"id": 2}]


async def test_an_outlet_whose_reader_falls_behind_is_dropped_not_grown(monkeypatch, caplog):
    monkeypatch.setattr(reply_module, "MAX_QUEUED_FRAMES", 4)
    outlet = Outlet("slow stream")
    assert all(outlet.push(b"x") for _ in range(4))
    assert outlet.push(b"x") is False and outlet.dropped
    assert await outlet.pull() is None
    assert "not reading" in caplog.text


async def test_a_dropped_stream_interrupts_a_send_blocked_on_a_slow_socket():
    outlet = Outlet("blocked stream")
    blocked = asyncio.Event()
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)
        if message.get("body"):
            blocked.set()
            await asyncio.Event().wait()  # a client that never reads: the socket never drains

    async def receive() -> dict:
        await asyncio.Event().wait()
        return {}

    outlet.push(b"data: {}\n\n")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            results: list[bool] = []

            async def run() -> None:
                results.append(await send_sse(send, receive, outlet))

            tg.start_soon(run)
            await blocked.wait()
            outlet.drop()
    assert results == [False]
    assert sent[0]["type"] == "http.response.start"


async def test_a_quiet_stream_sends_keep_alive_comments(monkeypatch):
    monkeypatch.setattr(reply_module, "KEEPALIVE_SECONDS", 0.01)
    outlet = Outlet("quiet stream")
    assert await outlet.pull() is KEEPALIVE_FRAME
    outlet.finish()
    assert await outlet.pull() is None


def test_only_our_event_ids_parse():
    assert parse_event_id("3-17") == (3, 17)
    for bad in ("", "3", "a-1", "1-b", "-1-2", "1" * 50 + "-1"):
        assert parse_event_id(bad) is None
