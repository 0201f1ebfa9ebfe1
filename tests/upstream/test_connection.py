"""An upstream connection keeps serving when relaying one of its messages fails (a real in-process SDK server)."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest

from bastion.config.loader import parse_config
from bastion.transports.base import JsonDict, RequestId
from bastion.transports.memory import MemoryClientTransport
from bastion.upstream.association import Call
from bastion.upstream.connection import State, UpstreamConnection
from tests.servers import calc

pytestmark = pytest.mark.anyio


class FailingOwner:
    """A downstream session whose relay of notifications breaks (a bug, a dead client)."""

    session_id = "s-1"
    principal_name = "alice"

    def __init__(self) -> None:
        self.relayed: list[str] = []

    async def relay_request(
        self, message: JsonDict, related: RequestId | None, *, server: str = ""
    ) -> JsonDict:
        return {"error": {"code": -32601, "message": "not here"}}

    async def relay_notification(self, message: JsonDict, related: RequestId | None) -> None:
        self.relayed.append(message["method"])
        raise RuntimeError("relay broke")


def _connection(protocol: str, listener: Any = None) -> UpstreamConnection:
    config = parse_config(
        {"servers": {"calc": {"transport": "stdio", "command": "in-memory", "protocol": protocol}}}
    )
    server = calc.build()
    return UpstreamConnection(
        "calc", config.servers["calc"], lambda: MemoryClientTransport(server), on_notification=listener
    )


def _text(reply: JsonDict) -> str:
    return "".join(c.get("text", "") for c in reply["result"]["content"])


async def test_a_progress_relay_that_raises_is_logged_and_dropped_and_the_reader_keeps_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = _connection("legacy")
    owner = FailingOwner()
    await conn.start()
    try:
        with anyio.fail_after(10):
            assert await conn.wait_ready(10)
            with caplog.at_level(logging.ERROR, logger="bastion.upstream"):
                reply = await conn.request(
                    "tools/call",
                    {"name": "slow_count", "arguments": {"n": 2}, "_meta": {"progressToken": "t"}},
                    owner=owner,
                    downstream_id=1,
                )
            assert _text(reply) == "counted 2"
            assert owner.relayed == ["notifications/progress", "notifications/progress"]
            assert any("relaying notifications/progress failed" in r.getMessage() for r in caplog.records)
            after = await conn.request("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
            assert _text(after) == "3"
        assert conn.state is State.READY
        assert conn.restarts == 0
    finally:
        await conn.aclose()


async def test_a_notification_listener_that_raises_does_not_end_the_connection() -> None:
    seen: list[tuple[str, Call | None]] = []
    told = anyio.Event()

    async def listener(conn: UpstreamConnection, message: JsonDict, call: Call | None) -> None:
        seen.append((message["method"], call))
        if message["method"] == "notifications/tools/list_changed":
            told.set()
        raise RuntimeError("listener broke")

    conn = _connection("auto", listener)  # 2026-07-28: list_changed comes on the listen stream
    await conn.start()
    try:
        with anyio.fail_after(10):
            assert await conn.wait_ready(10)
            grown = await conn.request("tools/call", {"name": "grow", "arguments": {}})
            assert _text(grown) == "grown"
            await told.wait()
            after = await conn.request("tools/call", {"name": "add", "arguments": {"a": 2, "b": 2}})
            assert _text(after) == "4"
        assert conn.modern
        assert ("notifications/tools/list_changed", None) in seen
        assert conn.state is State.READY
        assert conn.restarts == 0
    finally:
        await conn.aclose()
