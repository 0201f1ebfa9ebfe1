"""The TypeScript SDK client (npm `@modelcontextprotocol/sdk`) and mcp-remote through Bastion, over every transport:
Streamable HTTP, HTTP+SSE, `bastion stdio`, and mcp-remote bridging stdio to Bastion's HTTP and SSE endpoints.
Each run lists the tools, calls one, answers a sampling request mid-call and cancels a long call, after which the
session still works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
import yaml

from tests.interop.conftest import _serve_http
from tests.peers import NODE, NODE_MODULES, bastion_env, everything_stdio

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.timeout(300)]

TS_CLIENT = NODE_MODULES.parent / "ts_client.mjs"
MCP_REMOTE = NODE_MODULES / "mcp-remote/dist/proxy.js"
ROUTES = ["http", "sse", "stdio", "mcp-remote-http", "mcp-remote-sse"]


def _run_client(args: list[str], home: Path) -> dict:
    env = {**bastion_env(), "HOME": str(home), "MCP_REMOTE_CONFIG_DIR": str(home / "mcp-auth")}
    done = subprocess.run(
        [NODE, str(TS_CLIENT), *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("route", ROUTES)
async def test_the_typescript_sdk_client_keeps_every_feature_through_bastion(tmp_path, route):
    config = tmp_path / "bastion.yaml"
    config.write_text(yaml.safe_dump({"servers": {"everything": everything_stdio()}}))
    if route == "stdio":
        args = ["stdio", sys.executable, "-m", "bastion.cli", "stdio", "--config", str(config)]
        seen = await anyio.to_thread.run_sync(_run_client, args, tmp_path)
    else:
        async with _serve_http(config) as url:
            if route == "http":
                args = ["http", f"{url}/mcp"]
            elif route == "sse":
                args = ["sse", f"{url}/sse"]
            else:
                transport = "http-only" if route == "mcp-remote-http" else "sse-only"
                path = "/mcp" if route == "mcp-remote-http" else "/sse"
                args = [
                    "stdio",
                    NODE,
                    str(MCP_REMOTE),
                    f"{url}{path}",
                    "--allow-http",
                    "--transport",
                    transport,
                ]
            seen = await anyio.to_thread.run_sync(_run_client, args, tmp_path)
    assert seen["server"]["name"] == "bastion"
    assert {"everything__echo", "everything__trigger-sampling-request"} <= set(seen["tools"])
    assert seen["echo"] == "Echo: hi from ts"
    assert seen["sampled"] == 1 and "stub answer" in seen["samplingText"]
    assert seen["cancel"].startswith("cancelled")
    assert seen["afterCancel"] == "Echo: still here"
