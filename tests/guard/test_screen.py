"""`ToolScreen` edge cases: a failing store, rejections, replicas sharing pins through Redis; and the guard stage on
completions and subscriptions."""

from __future__ import annotations

import uuid
from typing import Any

import anyio
import pytest
from mcp import Client, types

from bastion.auth.principal import ANONYMOUS
from bastion.guard.pins import PinCheck, ToolPins
from bastion.guard.screen import ToolScreen
from bastion.pipeline.exchange import Exchange, SessionInfo
from bastion.pipeline.notice import NoticeKind
from bastion.pipeline.stages.guard import GuardStage
from bastion.pipeline.verdicts import Mutate, Pass
from bastion.state import EmbeddedStateStore
from bastion.state.redis_store import RedisStateStore
from bastion.testing import client_transport
from tests.guard.harness import guarded_gateway
from tests.guard.stub_detectors import stub_guard
from tests.servers import shady

pytestmark = pytest.mark.anyio

WEATHER = {"name": "weather", "description": shady.WEATHER_V1, "inputSchema": {"type": "object"}}


class _BrokenStore(EmbeddedStateStore):
    async def get_record(self, namespace: str, record_id: str) -> dict[str, Any] | None:
        raise ConnectionError("store down")


async def test_a_pin_that_cannot_be_checked_withholds_the_tool_unless_failing_open():
    store = _BrokenStore(":memory:")
    closed = ToolScreen(stub_guard(), ToolPins(store))
    assert await closed("srv", [WEATHER]) == []
    verdict = await closed.screen_one("srv", WEATHER)
    assert verdict.served is None and verdict.reason == "store_error" and verdict.pin is None
    opened = ToolScreen(stub_guard(), ToolPins(store), fail_closed=False)
    assert [t["name"] for t in await opened("srv", [WEATHER])] == ["weather"]
    await store.aclose()


async def test_known_good_definitions_are_not_looked_up_again():
    async with EmbeddedStateStore(":memory:") as store:
        screen = ToolScreen(stub_guard(), ToolPins(store))
        assert (await screen.screen_one("srv", WEATHER)).pin is PinCheck.NEW
        screen.pins = ToolPins(_BrokenStore(":memory:"))  # any store access would now fail
        assert (await screen.screen_one("srv", WEATHER)).pin is PinCheck.MATCH


async def _wait_for(predicate: Any) -> None:
    with anyio.fail_after(10):
        while not predicate():
            await anyio.sleep(0.01)


async def test_a_rejected_change_stays_held_and_is_recorded_once():
    changed = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with (
        guarded_gateway({"shady": shady.build()}, guard=stub_guard()) as g,
        Client(client_transport(g.gateway), mode="legacy", message_handler=on_message) as client,
    ):
        await client.list_tools()
        await client.call_tool("shady__upgrade", {})
        with anyio.fail_after(5):
            await changed.wait()
        assert "shady__weather" not in {t.name for t in (await client.list_tools()).tools}
        assert g.guardrails.pins is not None
        await g.guardrails.pins.reject("shady", "weather", by="test")

        def events() -> list[str]:
            return [n.detail["event"] for n in g.recorder.of_kind(NoticeKind.TOOL_CHANGED)]

        await _wait_for(lambda: events() == ["changed", "rejected"])
        assert await g.guardrails.screen.check_held() == []
        assert events() == ["changed", "rejected"]
        assert "shady__weather" not in {t.name for t in (await client.list_tools()).tools}


@pytest.mark.integration
async def test_an_approval_on_one_replica_releases_the_tool_on_another_through_redis():
    prefix = f"bastion-test-{uuid.uuid4().hex}:"
    async with RedisStateStore("redis://127.0.0.1:6379/0", key_prefix=prefix) as store:
        try:
            notified: list[Any] = []

            async def on_message(message: Any) -> None:
                if isinstance(message, types.ToolListChangedNotification):
                    notified.append(message)

            async with (
                guarded_gateway({"shady": shady.build()}, guard=stub_guard(), store=store) as first,
                guarded_gateway(
                    {"shady": shady.build(rugpulled=True)}, guard=stub_guard(), store=store
                ) as second,
                Client(client_transport(first.gateway), mode="legacy") as one,
                Client(client_transport(second.gateway), mode="legacy", message_handler=on_message) as two,
            ):
                assert "shady__weather" in {t.name for t in (await one.list_tools()).tools}
                assert "shady__weather" not in {t.name for t in (await two.list_tools()).tools}
                assert first.guardrails.pins is not None
                assert await first.guardrails.pins.approve("shady", "weather", by="replica-1") is not None
                await _wait_for(lambda: bool(notified))  # the second replica's poll found the decision
                tools = {t.name: t for t in (await two.list_tools()).tools}
                assert tools["shady__weather"].description == shady.WEATHER_V2
        finally:
            keys = [k async for k in store._redis.scan_iter(match=f"{prefix}*")]
            if keys:
                await store._redis.delete(*keys)


def _exchange(method: str, params: dict[str, Any], result: dict[str, Any] | None = None) -> Exchange:
    session = SessionInfo(session_id="s", transport="memory", principal=ANONYMOUS)
    exchange = Exchange(session=session, method=method, params=params, server="shady", target="x")
    exchange.result = result
    return exchange


async def test_completion_arguments_and_values_are_inspected():
    stage = GuardStage(stub_guard())
    params = {
        "ref": {"type": "ref/prompt", "name": "shady__summarize"},
        "argument": {"name": "text", "value": ""},
    }
    params["argument"]["value"] = f"AWS {shady.FAKE_AWS_KEY}"
    verdict = await stage.on_request(_exchange("completion/complete", params))
    assert isinstance(verdict, Mutate)
    assert (
        verdict.body["argument"]["value"] == "AWS [REDACTED:aws_access_key]"
        and verdict.body["ref"] == params["ref"]
    )
    result = {"completion": {"values": [shady.FAKE_AWS_KEY, "fine"]}}
    verdict = await stage.on_response(_exchange("completion/complete", {}, result))
    assert isinstance(verdict, Mutate) and verdict.body["completion"]["values"] == [
        "[REDACTED:aws_access_key]",
        "fine",
    ]


async def test_subscriptions_check_the_uri_and_lists_are_left_to_the_tool_screen():
    stage = GuardStage(stub_guard())
    verdict = await stage.on_request(
        _exchange("resources/subscribe", {"uri": f"s3://{shady.FAKE_AWS_KEY}/x"})
    )
    assert isinstance(verdict, Mutate) and shady.FAKE_AWS_KEY not in verdict.body["uri"]
    listing = _exchange("tools/list", {}, {"tools": [{"name": "x", "description": "<IMPORTANT>"}]})
    listing.server = None
    assert isinstance(await stage.on_response(listing), Pass)


async def test_a_tool_that_appears_after_the_first_listing_is_held_like_a_changed_one():
    async with EmbeddedStateStore(":memory:") as store:
        pins = ToolPins(store)
        screen = ToolScreen(stub_guard(), pins)
        assert [t["name"] for t in await screen("srv", [WEATHER])] == ["weather"]  # trusted on first use
        newcomer = {"name": "exfiltrate", "description": "Send a file.", "inputSchema": {"type": "object"}}
        assert [t["name"] for t in await screen("srv", [WEATHER, newcomer])] == ["weather"]
        held = await pins.get("srv", "exfiltrate")
        assert held is not None and held.held and held.hash == "" and held.pending_definition == newcomer
        approved = await pins.approve("srv", "exfiltrate")
        assert approved is not None and approved.history == ()
        assert [t["name"] for t in await screen("srv", [WEATHER, newcomer])] == ["weather", "exfiltrate"]
        other = ToolScreen(stub_guard(), pins)  # another server's first listing is still trusted on first use
        assert [t["name"] for t in await other("other", [newcomer])] == ["exfiltrate"]
