"""Template resources are routed from the start, whatever lists a client called before reading one."""

from __future__ import annotations

import pytest
from mcp import Client, types
from mcp.server import MCPServer

from bastion.testing import client_transport, running_gateway

pytestmark = pytest.mark.anyio


def _docs() -> MCPServer:
    server = MCPServer("docs")

    @server.resource("docs://index")
    def index() -> str:
        return "index"

    @server.resource("docs://pages/{page}")
    def page(page: str) -> str:
        return f"page {page}"

    return server


def _other() -> MCPServer:
    server = MCPServer("other")

    @server.resource("other://readme")
    def readme() -> str:
        return "readme"

    return server


def _text(result: types.ReadResourceResult) -> str:
    return " ".join(c.text for c in result.contents if isinstance(c, types.TextResourceContents))


@pytest.mark.parametrize("listed_first", [False, True])
async def test_a_template_resource_is_readable_before_any_client_listed_templates(listed_first: bool) -> None:
    async with (
        running_gateway({"docs": _docs(), "other": _other()}) as gw,
        Client(client_transport(gw), mode="legacy") as client,
    ):
        if listed_first:
            await client.list_resources()  # fills the exact routes, not the templates
        assert _text(await client.read_resource("docs://pages/intro")) == "page intro"
        assert _text(await client.read_resource("other://readme")) == "readme"
