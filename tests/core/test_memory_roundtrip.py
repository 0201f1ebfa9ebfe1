import pytest
from mcp import Client

from bastion.testing import client_transport, running_gateway
from tests.servers import calc


@pytest.mark.anyio
async def test_sdk_client_calls_namespaced_tool_through_gateway_in_memory():
    async with running_gateway({"calc": calc.build(), "other": calc.build("other")}) as gw:
        async with Client(client_transport(gw), mode="legacy") as client:
            tools = await client.list_tools()
            names = sorted(t.name for t in tools.tools)
            assert "calc__add" in names and "other__add" in names
            result = await client.call_tool("calc__add", {"a": 2, "b": 40})
            assert result.structured_content == {"result": 42}
