"""Handshake-era clients behind a dual-era (`protocol: auto`) upstream keep every in-call feature: Bastion serves
them over a handshake-era session of that upstream, while 2026-07-28 clients keep the 2026-07-28 one."""

from __future__ import annotations

import pytest
from mcp import Client, types

from bastion.testing import client_transport, running_gateway
from tests.servers import dual

pytestmark = pytest.mark.anyio


async def _sample(ctx, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="forty-two"), model="stub"
    )


async def _elicit(ctx, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"ok": True})


async def _roots(ctx) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///work/project")])


def _text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_a_handshake_era_client_behind_a_dual_era_upstream_keeps_sampling_elicitation_and_roots():
    async with running_gateway({"dual": dual.build()}) as gw:
        assert gw.upstreams["dual"].modern  # the primary connection speaks 2026-07-28
        async with Client(
            client_transport(gw),
            mode="legacy",
            sampling_callback=_sample,
            elicitation_callback=_elicit,
            list_roots_callback=_roots,
        ) as client:
            sampled = await client.call_tool("dual__ask_model", {"question": "meaning?"})
            asked = await client.call_tool("dual__ask_user", {})
            rooted = await client.call_tool("dual__roots", {})
        assert (sampled.is_error, _text(sampled)) == (False, "model said: forty-two")
        assert (asked.is_error, _text(asked)) == (False, "user said: accept ok=True")
        assert (rooted.is_error, _text(rooted)) == (False, "file:///work/project")


async def test_a_handshake_era_client_behind_a_dual_era_upstream_gets_the_progress_of_its_call():
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with running_gateway({"dual": dual.build()}) as gw:
        async with Client(client_transport(gw), mode="legacy") as client:
            result = await client.call_tool("dual__chatty", {}, progress_callback=on_progress)
    assert (result.is_error, _text(result)) == (False, "done")
    assert progress == [1]


async def test_a_2026_07_28_client_keeps_the_2026_07_28_session_and_opens_no_second_one():
    async with running_gateway({"dual": dual.build()}) as gw:
        async with Client(client_transport(gw), mode="2026-07-28") as client:
            result = await client.call_tool("dual__chatty", {})
        assert (result.is_error, _text(result)) == (False, "done")
        assert gw.twins.live() == []
