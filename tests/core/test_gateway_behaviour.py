"""Core gateway behaviours with real SDK servers as upstreams (stdio subprocesses or in-process)."""

from __future__ import annotations

import anyio
import pytest
from mcp import Client, types

from bastion.config import parse_config
from bastion.core.gateway import Gateway
from bastion.testing import client_transport, running_gateway
from bastion.upstream.connection import State
from tests.peers import calc_stdio
from tests.servers import calc

pytestmark = pytest.mark.anyio


def text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_client_cancellation_cancels_the_upstream_call():
    async with (
        running_gateway({"calc": calc.build()}) as gw,
        Client(client_transport(gw), mode="legacy") as client,
    ):

        def in_flight() -> int:
            conns = [*gw.upstreams.values(), *gw.pool.connections()]
            return sum(c.describe()["inFlight"] for c in conns)

        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "calc__sleep", {"seconds": 30})
            with anyio.fail_after(5):
                while not in_flight():
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        with anyio.fail_after(5):
            while in_flight():
                await anyio.sleep(0.01)


async def test_timeout_gives_a_clear_error_and_the_session_keeps_working():
    config = parse_config({"servers": {"calc": {**calc_stdio(), "tool_timeouts": {"sleep": 0.5}}}})
    gateway = Gateway(config)
    await gateway.start()
    try:
        async with Client(client_transport(gateway), mode="legacy") as client:
            with pytest.raises(Exception) as info:
                await client.call_tool("calc__sleep", {"seconds": 10})
            assert "did not answer" in str(info.value)
            assert (await client.call_tool("calc__add", {"a": 1, "b": 1})).structured_content == {"result": 2}
    finally:
        await gateway.aclose()


@pytest.mark.integration
async def test_crashed_stdio_upstream_fails_fast_leaves_the_list_and_comes_back():
    # A shared connection: this is about supervising the one process everybody uses.
    shared = {"isolation": "shared"}
    config = parse_config({"servers": {"calc": {**calc_stdio(), **shared}, "other": calc_stdio("other")}})
    gateway = Gateway(config)
    await gateway.start()
    changed = anyio.Event()

    async def on_message(message):
        if isinstance(message, types.ServerNotification) and isinstance(message, object):
            changed.set()

    try:
        async with Client(client_transport(gateway), mode="legacy", message_handler=on_message) as client:
            with pytest.raises(Exception) as info:
                await client.call_tool("calc__crash", {})
            assert "unavailable" in str(info.value)
            names = {t.name for t in (await client.list_tools()).tools}
            if gateway.upstreams["calc"].state is not State.READY:
                assert "calc__add" not in names
            assert "other__add" in names
            with anyio.fail_after(15):
                await changed.wait()
                while gateway.upstreams["calc"].state is not State.READY:
                    await anyio.sleep(0.05)
            assert (await client.call_tool("calc__add", {"a": 1, "b": 2})).structured_content == {"result": 3}
            assert gateway.upstreams["calc"].restarts >= 1
    finally:
        await gateway.aclose()


async def test_upstream_list_changed_reaches_the_client_and_refreshes_the_cache():
    changed = anyio.Event()

    async def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with (
        running_gateway({"calc": calc.build()}) as gw,
        Client(client_transport(gw), mode="legacy", message_handler=on_message) as client,
    ):
        assert "calc__extra" not in {t.name for t in (await client.list_tools()).tools}
        await client.call_tool("calc__grow", {})
        with anyio.fail_after(5):
            await changed.wait()
        assert "calc__extra" in {t.name for t in (await client.list_tools()).tools}


async def test_every_page_of_an_upstream_list_is_merged_into_one():
    from tests.servers import paged

    async with (
        running_gateway({"paged": paged.build()}) as gw,
        Client(client_transport(gw), mode="legacy") as client,
    ):
        listed = await client.list_tools()
        assert [t.name for t in listed.tools] == [f"paged__{n}" for n in paged.TOOL_NAMES]
        assert listed.next_cursor is None
        assert text(await client.call_tool("paged__t6", {})) == "called t6"
