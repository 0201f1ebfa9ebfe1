"""Policy decides who may raise the log level: `policy.log_level` for everyone, `roles.<r>.log_level` beyond it.

Upstream log messages can carry request data, so a deployment keeps verbose levels for operators' roles; a request
for fewer messages is always allowed, and a refused one is an audited `Denied` that leaves the session's level.
"""

from __future__ import annotations

import pytest
from mcp import Client, MCPError

from bastion.app.runtime import build_runtime
from bastion.auth.principal import Principal
from bastion.config import parse_config
from bastion.errors import Reason
from bastion.testing import client_transport
from tests.peers import PYTHON, ROOT

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

AGENT = Principal(name="agent", method="api_key", key_id="k-agent", roles=frozenset({"agents"}))
OPERATOR = Principal(name="oncall", method="api_key", key_id="k-ops", roles=frozenset({"agents", "ops"}))


def config(tmp_path, **policy):
    return parse_config(
        {
            "servers": {
                "probe": {
                    "transport": "stdio",
                    "command": PYTHON,
                    "args": [str(ROOT / "tests/servers/relay_probe.py")],
                }
            },
            "state": {"path": str(tmp_path / "state.db")},
            "audit": {"sinks": [{"type": "sqlite", "path": str(tmp_path / "audit.db")}]},
            "policy": {
                "default": "allow",
                "log_level": "warning",
                "roles": {"agents": {}, "ops": {"log_level": "debug"}},
                **policy,
            },
        }
    )


async def test_a_caller_without_a_verbose_role_cannot_raise_the_log_level_but_may_lower_it(tmp_path):
    runtime = build_runtime(config(tmp_path))
    await runtime.gateway.start()
    seen = []
    runtime.gateway.observers.append(type("O", (), {"on_exchange": staticmethod(_collect(seen))})())
    try:
        async with Client(client_transport(runtime.gateway, principal=AGENT), mode="legacy") as agent:
            with pytest.raises(MCPError) as refused:
                await agent.set_logging_level("debug")
            assert refused.value.error.code == -31001
            assert refused.value.error.data["reason"] == Reason.POLICY_DENIED
            await agent.set_logging_level("error")  # fewer messages: always fine
            await agent.set_logging_level("warning")
        async with Client(client_transport(runtime.gateway, principal=OPERATOR), mode="legacy") as operator:
            await operator.set_logging_level("debug")
    finally:
        await runtime.gateway.aclose()
    levels = [(e.session.principal.name, e.params["level"], e.error is None) for e in seen]
    assert levels == [
        ("agent", "debug", False),
        ("agent", "error", True),
        ("agent", "warning", True),
        ("oncall", "debug", True),
    ]


async def test_monitor_mode_flags_a_too_verbose_level_and_lets_it_through(tmp_path):
    runtime = build_runtime(config(tmp_path, mode="monitor"))
    await runtime.gateway.start()
    seen = []
    runtime.gateway.observers.append(type("O", (), {"on_exchange": staticmethod(_collect(seen))})())
    try:
        async with Client(client_transport(runtime.gateway, principal=AGENT), mode="legacy") as agent:
            await agent.set_logging_level("debug")
    finally:
        await runtime.gateway.aclose()
    [exchange] = seen
    assert exchange.error is None
    assert [(f.detector, f.type) for f in exchange.findings] == [("policy", "would_deny")]


def _collect(seen):
    async def on_exchange(exchange):
        if exchange.method == "logging/setLevel":
            seen.append(exchange)

    return on_exchange
