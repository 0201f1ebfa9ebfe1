"""Capability-aware lists: what needs a client capability the client did not declare is left out of its lists,
whether configured (`servers.<name>.client_capabilities`) or learned from an upstream asking during a call."""

from __future__ import annotations

import pytest
from mcp import Client, types

from bastion.testing import client_transport, memory_config, running_gateway
from tests.servers import dual

pytestmark = pytest.mark.anyio


async def _sample(ctx, params) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text="ok"), model="m"
    )


async def _elicit(ctx, params) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"ok": True})


async def _names(gw, **callbacks) -> set[str]:
    async with Client(client_transport(gw), mode="legacy", **callbacks) as client:
        return {t.name for t in (await client.list_tools()).tools}


def _config(**routing):
    servers = {
        "dual": {
            "transport": "stdio",
            "command": "in-memory",
            "client_capabilities": {"ask_model": ["sampling"], "roots": ["roots"]},
        }
    }
    return memory_config([], servers=servers, routing=routing)


async def test_configured_needs_hide_tools_from_clients_without_the_capability():
    async with running_gateway({"dual": dual.build()}, config=_config()) as gw:
        bare = await _names(gw)
        sampling = await _names(gw, sampling_callback=_sample)
    assert "dual__ask_model" not in bare and "dual__roots" not in bare and "dual__chatty" in bare
    assert "dual__ask_model" in sampling and "dual__roots" not in sampling


async def test_a_tool_seen_asking_for_elicitation_leaves_the_lists_of_clients_without_it():
    async with running_gateway({"dual": dual.build()}, config=_config()) as gw:
        assert "dual__ask_user" in await _names(gw)
        async with Client(client_transport(gw), mode="legacy", elicitation_callback=_elicit) as client:
            assert not (await client.call_tool("dual__ask_user", {})).is_error
            assert "dual__ask_user" in {t.name for t in (await client.list_tools()).tools}
        assert "dual__ask_user" not in await _names(gw)


async def test_capability_aware_lists_can_be_turned_off():
    async with running_gateway({"dual": dual.build()}, config=_config(capability_aware_lists=False)) as gw:
        assert "dual__ask_model" in await _names(gw)
