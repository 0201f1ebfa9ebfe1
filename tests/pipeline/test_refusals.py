"""`refusals`: a refused `tools/call` of a tool the caller can see is an `isError` result that names the rule or
detector and never the refused values (`result`, the default), or the JSON-RPC error (`error`); a hidden tool and an
unknown name fail exactly alike either way, and the upstream never sees a refused call."""

from __future__ import annotations

import pytest
from mcp import Client, types
from mcp.shared.exceptions import MCPError

from bastion.auth.principal import Principal
from bastion.pipeline.stages.authorize import AuthorizeStage
from bastion.policy.holder import PolicyHolder, parse_policy
from bastion.testing import client_transport, memory_config, running_gateway
from tests.servers import calc

pytestmark = pytest.mark.anyio

DEV = Principal(name="alice", roles=frozenset({"dev"}), method="api_key")
POLICY = parse_policy(
    {
        "roles": {
            "dev": {
                "rules": [
                    {"id": "calc", "tools": ["calc__*"]},
                    {"id": "small-sums", "effect": "deny", "tools": ["calc__add"], "when": "args.a > 1000"},
                    {"id": "no-sleep", "effect": "deny", "tools": ["calc__sleep"]},
                ]
            }
        }
    }
)


def _text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def _error_of(client: Client, name: str, arguments: dict) -> tuple[int, str]:
    with pytest.raises(MCPError) as info:
        await client.call_tool(name, arguments)
    return info.value.error.code, info.value.error.message.replace(name, "NAME")


@pytest.mark.parametrize("mode", ["result", "error"])
async def test_a_policy_refusal_of_a_visible_tool_is_a_readable_result_and_hidden_equals_unknown(mode):
    config = memory_config(["calc"], refusals=mode)
    stage = AuthorizeStage(PolicyHolder.from_config(POLICY))
    async with running_gateway({"calc": calc.build()}, config=config, stages=[stage]) as gw:
        async with Client(client_transport(gw, principal=DEV), mode="legacy") as client:
            secret_number = 987654321
            if mode == "result":
                refused = await client.call_tool("calc__add", {"a": secret_number, "b": 1})
                assert refused.is_error
                assert refused.meta == {"dev.bastion/refusal": {"by": "policy", "rule": "small-sums"}}
                assert "small-sums" in _text(refused) and str(secret_number) not in _text(refused)
            else:
                code, _ = await _error_of(client, "calc__add", {"a": secret_number, "b": 1})
                assert code == -32602
            hidden = await _error_of(client, "calc__sleep", {"seconds": 0})
            unknown = await _error_of(client, "calc__no_such_tool", {})
            assert hidden == unknown == (-32602, "Unknown tool: NAME")
            assert (await client.call_tool("calc__add", {"a": 1, "b": 2})).structured_content == {"result": 3}
