"""The client session driven with raw JSON-RPC dicts: lifecycle rules and error codes."""

from __future__ import annotations

import anyio
import pytest

from bastion.protocol import versions
from bastion.testing import running_gateway
from tests.servers import calc

pytestmark = pytest.mark.anyio


class Collect:
    def __init__(self):
        self.messages: list[tuple[dict, object]] = []
        self.event = anyio.Event()

    async def send(self, message, related):
        self.messages.append((message, related))
        self.event.set()

    async def reply(self, request_id):
        with anyio.fail_after(10):
            while True:
                for message, related in self.messages:
                    if message.get("id") == request_id and "method" not in message:
                        assert related == request_id
                        return message
                self.event = anyio.Event()
                await self.event.wait()


def init(request_id=1, version="2025-11-25"):
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }


async def _session(gw):
    out = Collect()
    return await gw.open_session(transport="memory", outbound=out), out


async def test_requests_before_initialize_are_refused_but_ping_is_answered():
    async with running_gateway({"calc": calc.build()}) as gw:
        session, out = await _session(gw)
        await session.handle({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert (await out.reply(1))["error"]["code"] == -32600
        await session.handle({"jsonrpc": "2.0", "id": 2, "method": "ping"})
        assert (await out.reply(2))["result"] == {}


async def test_initialize_negotiates_and_advertises_merged_capabilities():
    async with running_gateway({"calc": calc.build()}) as gw:
        session, out = await _session(gw)
        await session.handle(init(version="2025-06-18"))
        result = (await out.reply(1))["result"]
        assert result["protocolVersion"] == "2025-06-18"
        assert result["serverInfo"]["name"] == "bastion"
        assert result["capabilities"]["tools"] == {"listChanged": True}
        assert "calc does arithmetic" in result["instructions"]
        await session.handle(init(request_id=2, version="1999-01-01"))
        assert (await out.reply(2))["error"]["code"] == -32600  # already initialized


async def test_unknown_version_is_answered_with_our_newest():
    async with running_gateway({"calc": calc.build()}) as gw:
        session, out = await _session(gw)
        await session.handle(init(version="1999-01-01"))
        assert (await out.reply(1))["result"]["protocolVersion"] == versions.LATEST_HANDSHAKE


async def test_unknown_method_is_method_not_found_and_duplicate_ids_are_refused():
    async with running_gateway({"calc": calc.build()}) as gw:
        session, out = await _session(gw)
        await session.handle(init())
        await out.reply(1)
        await session.handle({"jsonrpc": "2.0", "method": "notifications/initialized"})
        await session.handle({"jsonrpc": "2.0", "id": 2, "method": "bogus/method"})
        assert (await out.reply(2))["error"]["code"] == -32601
        slow = {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "calc__sleep", "arguments": {"seconds": 5}},
        }
        await session.handle(slow)
        await session.handle(slow)
        assert (await out.reply(3))["error"]["code"] == -32600
        await session.handle(
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}}
        )


async def test_modern_request_needs_no_handshake_and_gets_result_type_and_server_info():
    async with running_gateway({"calc": calc.build()}) as gw:
        session, out = await _session(gw)
        meta = {versions.META_PROTOCOL_VERSION: "2026-07-28", versions.META_CLIENT_CAPABILITIES: {}}
        await session.handle(
            {
                "jsonrpc": "2.0",
                "id": 7,
                "method": "tools/call",
                "params": {"name": "calc__add", "arguments": {"a": 1, "b": 2}, "_meta": meta},
            }
        )
        result = (await out.reply(7))["result"]
        assert result["resultType"] == "complete"
        assert result["structuredContent"] == {"result": 3}
        assert result["_meta"][versions.META_SERVER_INFO]["name"] == "bastion"
        await session.handle(
            {"jsonrpc": "2.0", "id": 8, "method": "server/discover", "params": {"_meta": meta}}
        )
        discover = (await out.reply(8))["result"]
        assert discover["supportedVersions"] == ["2026-07-28"]


async def test_invalid_cursor_is_invalid_params():
    async with running_gateway({"calc": calc.build()}) as gw:
        session, out = await _session(gw)
        await session.handle(init())
        await out.reply(1)
        await session.handle(
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"cursor": "forged"}}
        )
        assert (await out.reply(2))["error"]["code"] == -32602


async def test_unknown_fields_and_meta_pass_through_untouched():
    async with running_gateway({"calc": calc.build()}) as gw:
        session, out = await _session(gw)
        await session.handle(init())
        await out.reply(1)
        await session.handle(
            {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {
                    "name": "calc__echo",
                    "arguments": {"text": "x"},
                    "_meta": {"com.example/trace": "abc"},
                    "x-extra": 1,
                },
            }
        )
        assert (await out.reply(2))["result"]["content"][0]["text"] == "x"
