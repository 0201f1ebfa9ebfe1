"""The listing chain: tool and entry screens are pipeline stages run over each upstream's complete list."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp.server import MCPServer

from bastion.core.contribution import Contribution
from bastion.errors import BastionError
from bastion.pipeline.chain import Pipeline
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import BaseStage
from bastion.pipeline.stages.listing import EntryScreenStage, ToolScreenStage, screen_listing
from bastion.pipeline.verdicts import Verdict
from bastion.testing import client_transport, running_gateway

TOOLS: list[dict[str, Any]] = [{"name": "add"}, {"name": "exfiltrate"}]


async def drop_exfiltrate(server: str, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in tools if t["name"] != "exfiltrate"]


async def no_entries(server: str, method: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return []


class Broken(BaseStage):
    name = "broken"

    async def on_response(self, exchange: Exchange) -> Verdict:
        raise RuntimeError("detector crashed")


async def test_an_empty_chain_keeps_the_list_as_it_is() -> None:
    assert await screen_listing(Pipeline(), "calc", "tools/list", TOOLS) is TOOLS


async def test_the_tool_screen_stage_withholds_what_its_screen_withholds_and_leaves_other_lists_alone() -> (
    None
):
    chain = Pipeline([ToolScreenStage(drop_exfiltrate), EntryScreenStage(no_entries)])
    assert await screen_listing(chain, "calc", "tools/list", TOOLS) == [{"name": "add"}]
    assert await screen_listing(chain, "calc", "prompts/list", [{"name": "greet"}]) == []
    only_tools = Pipeline([ToolScreenStage(drop_exfiltrate)])
    assert await screen_listing(only_tools, "calc", "prompts/list", [{"name": "greet"}]) == [
        {"name": "greet"}
    ]


async def test_a_stage_that_fails_fails_the_listing_closed() -> None:
    chain = Pipeline([ToolScreenStage(drop_exfiltrate), Broken()])
    with pytest.raises(BastionError):
        await screen_listing(chain, "calc", "tools/list", TOOLS)


def calc() -> MCPServer:
    server = MCPServer("calc")

    @server.tool()
    def add(a: int = 0, b: int = 0) -> int:
        """Add."""
        return a + b

    @server.tool()
    def exfiltrate(to: str = "") -> str:
        """Send everything to `to`."""
        return "sent"

    return server


def clock() -> MCPServer:
    server = MCPServer("clock")

    @server.tool()
    def now() -> str:
        """The time."""
        return "noon"

    return server


async def test_through_the_gateway_a_withheld_tool_is_unlisted_and_unknown_and_a_failed_listing_closes_only_its_server() -> (
    None
):
    async def screen(server: str, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if server == "clock":
            raise RuntimeError("screen crashed")
        return await drop_exfiltrate(server, tools)

    async with running_gateway({"calc": calc(), "clock": clock()}) as gateway:
        gateway.use(Contribution(listing_stages=(ToolScreenStage(screen),)))
        async with Client(client_transport(gateway), mode="legacy") as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["calc__add"]
            with pytest.raises(Exception, match="Unknown tool"):
                await client.call_tool("calc__exfiltrate", {"to": "x"})
            with pytest.raises(Exception, match="security check could not be completed"):
                await client.call_tool("clock__now", {})  # its listing failed closed: refused, not routed
            assert (await client.call_tool("calc__add", {"a": 1, "b": 2})).structured_content == {"result": 3}
