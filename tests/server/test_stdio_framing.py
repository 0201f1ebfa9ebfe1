"""Property-based fuzzing of `bastion stdio`'s framing layer (`server/stdio.py` over `transports/stdio.py`), in
process: whatever bytes arrive on stdin (garbage, invalid UTF-8, over-long lines, a torn last line), every valid
request is answered exactly once, everything else gets an error with id null, and the loop ends at EOF."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import anyio
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.config import parse_config
from bastion.core.gateway import Gateway
from bastion.server.stdio import EOF, SIGNAL, serve_stdio
from bastion.types import RequestId

LIMIT = 256
"""Line cap of the fuzzed reader, so over-long lines are common."""


class Capture:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, message: dict[str, Any], related: RequestId | None) -> None:
        self.sent.append(message)


def _ping(request_id: int) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": "ping"})


garbage = st.one_of(
    st.binary(max_size=80),
    st.binary(min_size=LIMIT + 1, max_size=3 * LIMIT),
    st.sampled_from(
        [
            b'{"jsonrpc":"2.0","id":1,"method":',
            b"\xff\xfe\xfd",
            b'"hello"',
            b"[" * 100 + b"]" * 100,
            b'{"jsonrpc":"1.0","id":1,"method":"ping"}',
            b'{"jsonrpc":"2.0","id":"ghost","result":{}}',
            b'{"jsonrpc":"2.0","method":"notifications/whatever"}',
        ]
    ),
).map(lambda b: b.replace(b"\n", b" "))


@st.composite
def streams(draw: Any) -> tuple[bytes, list[int]]:
    lines: list[bytes] = []
    pings: list[int] = []
    for index in range(draw(st.integers(0, 15))):
        if draw(st.booleans()):
            pings.append(index)
            lines.append(_ping(index))
        else:
            lines.append(draw(garbage))
    data = b"\n".join(lines)
    if lines and draw(st.booleans()):
        data += b"\n"
    return data, pings


async def _serve(data: bytes, chunk: int) -> tuple[str, list[dict[str, Any]]]:
    gateway = Gateway(parse_config({"servers": {}, "guardrails": {"enabled": False}}))
    out = Capture()
    session = await gateway.open_session(transport="stdio", outbound=out)
    reader = asyncio.StreamReader(limit=LIMIT)
    for start in range(0, len(data), chunk):
        reader.feed_data(data[start : start + chunk])
    reader.feed_eof()
    try:
        with anyio.fail_after(10):
            ended = await serve_stdio(gateway, session, reader, out, stop=asyncio.Event())
            await session.drain(5)
    finally:
        await session.aclose()
        await gateway.aclose()
    return ended, out.sent


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.integers(1, 64))
def test_any_bytes_on_stdin_get_one_answer_per_request_and_null_id_errors_for_the_rest(stream, chunk):
    data, pings = stream
    ended, sent = anyio.run(_serve, data, chunk)
    assert ended == EOF
    answered = Counter(m["id"] for m in sent if m.get("id") is not None)
    assert answered == Counter(pings)
    for message in sent:
        assert message["jsonrpc"] == "2.0"
        if message["id"] is None:
            assert message["error"]["code"] in (-32700, -32600)
        else:
            assert message["result"] == {}


async def test_a_stop_signal_ends_the_loop_while_stdin_stays_open():
    gateway = Gateway(parse_config({"servers": {}, "guardrails": {"enabled": False}}))
    out = Capture()
    session = await gateway.open_session(transport="stdio", outbound=out)
    reader = asyncio.StreamReader(limit=LIMIT)
    reader.feed_data(_ping(1) + b"\n")
    stop = asyncio.Event()
    try:
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                results: list[str] = []

                async def run() -> None:
                    results.append(await serve_stdio(gateway, session, reader, out, stop=stop))

                tg.start_soon(run)
                while not out.sent:
                    await anyio.sleep(0.01)
                stop.set()
    finally:
        await session.aclose()
        await gateway.aclose()
    assert results == [SIGNAL] and out.sent == [{"jsonrpc": "2.0", "id": 1, "result": {}}]
