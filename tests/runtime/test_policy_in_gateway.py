"""Policy enforced through the whole gateway: hidden tools, no oracle, hot reload with list_changed."""

from __future__ import annotations

import anyio
import pytest
import yaml
from mcp import Client, types

from bastion.app.runtime import build_runtime
from bastion.auth.principal import Principal
from bastion.config import load_config
from bastion.testing import client_transport
from tests.peers import calc_stdio

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

READER = Principal(name="reader", roles=frozenset({"readonly"}), method="api_key")


def _write(path, tools):
    path.write_text(
        yaml.safe_dump(
            {
                "servers": {"calc": calc_stdio()},
                "state": {"path": str(path.parent / "state.db")},
                "policy": {
                    "default": "deny",
                    "roles": {"readonly": {"rules": [{"id": "reads", "effect": "allow", "tools": tools}]}},
                },
            }
        )
    )


async def test_hidden_tools_are_absent_and_calling_them_looks_like_an_unknown_name(tmp_path):
    path = tmp_path / "bastion.yaml"
    _write(path, ["calc__add"])
    runtime = build_runtime(load_config(path), config_path=str(path))
    await runtime.gateway.start()
    try:
        async with Client(client_transport(runtime.gateway, principal=READER), mode="legacy") as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["calc__add"]
            assert (await client.call_tool("calc__add", {"a": 1, "b": 2})).structured_content == {"result": 3}
            errors = []
            for name in ("calc__echo", "calc__nope", "CALC__ADD", "calc__add "):
                with pytest.raises(Exception) as info:
                    await client.call_tool(name, {"text": "x"})
                errors.append(str(info.value).replace(name, "NAME"))
            assert len(set(errors)) == 1 and "Unknown tool: NAME" in errors[0]
    finally:
        await runtime.gateway.aclose()


async def test_policy_file_change_is_hot_reloaded_and_clients_hear_list_changed(tmp_path):
    path = tmp_path / "bastion.yaml"
    _write(path, ["calc__add"])
    runtime = build_runtime(load_config(path), config_path=str(path))
    changed = anyio.Event()

    async def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    await runtime.gateway.start()
    try:
        async with Client(
            client_transport(runtime.gateway, principal=READER), mode="legacy", message_handler=on_message
        ) as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["calc__add"]
            with anyio.fail_after(20):
                while not changed.is_set():
                    _write(path, ["calc__add", "calc__echo"])  # rewrite until the watcher has started
                    with anyio.move_on_after(1):
                        await changed.wait()
            assert {t.name for t in (await client.list_tools()).tools} == {"calc__add", "calc__echo"}
            path.write_text("policy: {roles: {readonly: {rules: [{when: 'this is not CEL ((('}]}}}\n")
            runtime.policy.reload()
            assert {t.name for t in (await client.list_tools()).tools} == {"calc__add", "calc__echo"}
    finally:
        await runtime.gateway.aclose()
