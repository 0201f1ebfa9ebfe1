"""The flow stage in a gateway with an in-process SDK server: monitor mode, and a state store that is down."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from bastion.config import parse_config
from bastion.pipeline.stages.flow import FlowStage
from bastion.policy.holder import PolicyHolder
from bastion.policy.taint import TaintStore
from bastion.state import EmbeddedStateStore, StateStore
from bastion.state.redis_store import RedisStateStore
from bastion.testing import client_transport, running_gateway
from tests.peers import free_port
from tests.servers import calc

pytestmark = pytest.mark.anyio

ECHO_IS_UNTRUSTED = {"servers": ["calc"], "tools": ["echo"], "labels": ["reads_untrusted"]}
ADD_AFTER_UNTRUSTED = {
    "id": "no-add-after-untrusted",
    "when": 'session.tainted("untrusted") && tool.local == "add"',
}


def policy(**extra: Any) -> dict[str, Any]:
    flow = {"enabled": True, "labels": [ECHO_IS_UNTRUSTED], "rules": [ADD_AFTER_UNTRUSTED]}
    return {"default": "allow", **extra, "flow": {**flow, **extra.pop("flow", {})}}


def setup(store: StateStore, document: dict[str, Any]) -> tuple[Any, FlowStage]:
    config = parse_config(
        {"servers": {"calc": {"transport": "stdio", "command": "in-memory"}}, "policy": document}
    )
    assert config.policy is not None
    stage = FlowStage(PolicyHolder.from_config(config.policy), TaintStore(store, ttl=60), references={})
    return config, stage


async def test_monitor_mode_flags_what_a_flow_rule_would_deny_and_the_call_goes_through():
    async with EmbeddedStateStore(":memory:") as store:
        config, stage = setup(store, policy(mode="monitor"))
        recorded: list[Any] = []

        class Keep:
            async def on_exchange(self, exchange: Any) -> None:
                recorded.append(exchange)

        async with (
            running_gateway({"calc": calc.build()}, config=config, stages=[stage, stage.capture],
                            observers=[stage, Keep()]) as gateway,
            Client(client_transport(gateway), mode="legacy") as client,
        ):  # fmt: skip
            await client.call_tool("calc__echo", {"text": "a page"})
            result = await client.call_tool("calc__add", {"a": 1, "b": 2})
            assert not result.is_error
        last = [e for e in recorded if e.method == "tools/call"][-1]
        (decision,) = [d for d in last.decisions if d.stage == "flow"]
        assert decision.outcome == "flag" and decision.explanation.startswith("would deny (monitor)")


@pytest.mark.parametrize("mode", ["closed", "open"])
async def test_with_the_state_store_down_calls_fail_closed_or_pass_as_configured(mode: str):
    store = RedisStateStore(f"redis://127.0.0.1:{free_port()}/0", key_prefix="down:", timeout_seconds=0.5)
    config, stage = setup(store, policy(flow={"failure_mode": mode}))
    try:
        async with (
            running_gateway({"calc": calc.build()}, config=config, stages=[stage, stage.capture]) as gateway,
            Client(client_transport(gateway), mode="legacy") as client,
        ):
            if mode == "open":
                assert not (await client.call_tool("calc__add", {"a": 1, "b": 2})).is_error
            else:
                with pytest.raises(MCPError) as info:
                    await client.call_tool("calc__add", {"a": 1, "b": 2})
                assert info.value.error.data["stage"] == "flow"
    finally:
        await store.aclose()
