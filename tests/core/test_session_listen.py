"""A 2026-07-28 client on a session with its own stream (`bastion stdio`) can hold `subscriptions/listen`: the
acknowledgement first, then only the kinds it asked for, stamped with its id, and a `complete` result at the end."""

from __future__ import annotations

import anyio
import pytest

from bastion.protocol import versions
from bastion.testing import running_gateway
from tests.core.test_session_raw import Collect
from tests.servers import calc

pytestmark = pytest.mark.anyio
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"


def _modern(request_id, method, params=None):
    meta = {versions.META_PROTOCOL_VERSION: "2026-07-28", versions.META_CLIENT_CAPABILITIES: {}}
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**(params or {}), "_meta": meta}}


async def _first(out: Collect, predicate):
    with anyio.fail_after(10):
        while True:
            for message, _related in out.messages:
                if predicate(message):
                    return message
            out.event = anyio.Event()
            await out.event.wait()


async def test_a_stdio_listen_is_acknowledged_and_hears_tools_list_changed_stamped_with_its_id():
    async with running_gateway({"calc": calc.build()}) as gw:
        out = Collect()
        session = await gw.open_session(transport="stdio", outbound=out)
        discover = _modern(1, "server/discover")
        await session.handle(discover)
        caps = (await out.reply(1))["result"]["capabilities"]
        assert caps["tools"] == {"listChanged": True}
        await session.handle(
            _modern("L", "subscriptions/listen", {"notifications": {"toolsListChanged": True}})
        )
        ack = await _first(out, lambda m: m.get("method") == "notifications/subscriptions/acknowledged")
        assert ack["params"] == {"notifications": {"toolsListChanged": True}, "_meta": {SUBSCRIPTION_ID: "L"}}
        await session.handle(_modern(2, "tools/call", {"name": "calc__grow", "arguments": {}}))
        assert "result" in await out.reply(2)
        changed = await _first(out, lambda m: m.get("method") == "notifications/tools/list_changed")
        assert changed["params"]["_meta"] == {SUBSCRIPTION_ID: "L"}
        assert not any(m.get("method") == "notifications/prompts/list_changed" for m, _ in out.messages)
        session.end_listen()
        assert (await out.reply("L"))["result"] == {"resultType": "complete", "_meta": {SUBSCRIPTION_ID: "L"}}
        await session.aclose()


async def test_a_stdio_listen_is_ended_without_a_reply_by_the_clients_cancel():
    async with running_gateway({"calc": calc.build()}) as gw:
        out = Collect()
        session = await gw.open_session(transport="stdio", outbound=out)
        await session.handle(
            _modern("L", "subscriptions/listen", {"notifications": {"toolsListChanged": True}})
        )
        await _first(out, lambda m: m.get("method") == "notifications/subscriptions/acknowledged")
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "L"}}
        await session.handle(cancel)
        await session.handle(_modern(3, "tools/list"))
        assert "result" in await out.reply(3)
        assert not session.in_flight("L")
        assert not any(m.get("id") == "L" for m, _ in out.messages)
        await session.aclose()
