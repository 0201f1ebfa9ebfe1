"""Handshake-era clients behind a dual-era (`protocol: auto`) upstream keep every in-call feature: Bastion serves
them over a handshake-era session of that upstream, while 2026-07-28 clients keep the 2026-07-28 one."""

from __future__ import annotations

import pytest
from mcp import Client, types

from bastion.auth.principal import Principal
from bastion.testing import client_transport, memory_config, running_gateway
from tests.servers import conformance_fixture, dual

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


async def test_subscriptions_are_advertised_once_a_handshake_era_session_can_serve_them():
    # The dual-era server's 2026-07-28 capabilities have no subscribe; its handshake-era ones do.
    async with running_gateway({"fixture": conformance_fixture.build()}) as gw:
        assert gw.upstreams["fixture"].modern
        async with Client(client_transport(gw), mode="legacy", sampling_callback=_sample) as client:
            assert client.server_capabilities.resources.subscribe is None
            await client.call_tool("fixture__test_simple_text", {})  # served by the handshake-era session
        async with Client(client_transport(gw), mode="legacy") as client:
            assert client.server_capabilities.resources.subscribe is True
            await client.subscribe_resource("test://watched-resource")


async def test_nothing_handshake_only_is_advertised_for_a_modern_only_upstream():
    config = memory_config(
        [], servers={"fixture": {"transport": "stdio", "command": "x", "protocol": "modern"}}
    )
    async with running_gateway({"fixture": conformance_fixture.build()}, config=config) as gw:
        async with Client(client_transport(gw), mode="legacy", sampling_callback=_sample) as client:
            await client.call_tool("fixture__test_simple_text", {})
            assert gw.twins.live() == []
            capabilities = client.server_capabilities
            assert capabilities.resources.subscribe is None and capabilities.logging is None


async def test_each_principal_gets_a_handshake_era_session_of_its_own_and_no_shared_twin_is_made():
    # stdio isolates per principal: a shared twin would hand one principal's sampling to another's client.
    async with running_gateway({"dual": dual.build()}) as gw:
        for name in ("alice", "bob"):
            principal = Principal(name=name, method="api_key")
            async with Client(
                client_transport(gw, principal=principal), mode="legacy", sampling_callback=_sample
            ) as client:
                sampled = await client.call_tool("dual__ask_model", {"question": "meaning?"})
            assert (sampled.is_error, _text(sampled)) == (False, "model said: forty-two")
        handshake_era = [c for c in gw.pool.connections() if not c.modern]
        assert sorted(c.scope.principal for c in handshake_era) == ["alice", "bob"]
        assert gw.twins.live() == []


async def test_a_shared_dual_era_upstream_serves_handshake_era_clients_on_its_one_twin_not_on_scoped_ones():
    config = memory_config(
        [], servers={"dual": {"transport": "stdio", "command": "x", "isolation": "shared"}}
    )
    async with running_gateway({"dual": dual.build()}, config=config) as gw:
        for name in ("alice", "bob"):
            principal = Principal(name=name, method="api_key")
            async with Client(
                client_transport(gw, principal=principal), mode="legacy", sampling_callback=_sample
            ) as client:
                result = await client.call_tool("dual__chatty", {})
            assert (result.is_error, _text(result)) == (False, "done")
        assert [t.name for t in gw.twins.live()] == ["dual"]
        assert gw.pool.connections() == []
