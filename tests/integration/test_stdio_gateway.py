"""`bastion stdio` as a real subprocess, launched by the official SDK client, in front of real stdio upstreams."""

import os
import sys
from pathlib import Path

import anyio
import pytest
import yaml
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def _config(tmp_path: Path) -> Path:
    cfg = {
        "servers": {
            "calc": {
                "transport": "stdio",
                "command": sys.executable,
                "args": [str(ROOT / "tests/servers/calc.py")],
            },
            "time": {
                "transport": "stdio",
                "command": sys.executable,
                "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
            },
        }
    }
    path = tmp_path / "bastion.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _bastion(config: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "bastion.cli", "stdio", "--config", str(config)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28", "auto"])
async def test_sdk_client_reaches_two_stdio_upstreams_through_bastion_stdio(tmp_path, mode):
    async with Client(_bastion(_config(tmp_path)), mode=mode) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"calc__add", "time__get_current_time"} <= names
        result = await client.call_tool("calc__add", {"a": 20, "b": 22})
        assert result.structured_content == {"result": 42}
        now = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
        assert not now.is_error


async def test_a_2026_07_28_sdk_client_listens_through_bastion_stdio(tmp_path):
    async with Client(_bastion(_config(tmp_path)), mode="2026-07-28") as client:
        async with client.listen(tools_list_changed=True) as subscription:
            assert subscription.honored.tools_list_changed
            await client.call_tool("calc__grow", {})
            with anyio.fail_after(30):
                event = await subscription.__anext__()
            assert type(event).__name__ == "ToolsListChanged"
