"""Run the same test body with the official SDK client reaching Bastion over memory, stdio and Streamable HTTP."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from mcp import Client, StdioServerParameters, types
from mcp.client.sse import sse_client

from bastion.config import parse_config
from bastion.core.gateway import Gateway
from bastion.testing import client_transport
from tests.peers import bastion_env, free_port

TRANSPORTS = ["memory", "stdio", "streamable-http", "sse"]


async def sampling(ctx: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text="stub answer"),
        model="stub-model",
        stop_reason="endTurn",
    )


async def elicitation(ctx: Any, params: Any) -> types.ElicitResult:
    return types.ElicitResult(action="accept", content={"approve": True})


async def roots(ctx: Any) -> types.ListRootsResult:
    return types.ListRootsResult(roots=[types.Root(uri="file:///srv/project", name="project")])


CLIENT_CALLBACKS = {
    "sampling_callback": sampling,
    "elicitation_callback": elicitation,
    "list_roots_callback": roots,
}


@contextlib.asynccontextmanager
async def _serve_http(config_path: Path) -> AsyncIterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli", "serve", "--config", str(config_path), "--port", str(port)],
        env=bastion_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with anyio.fail_after(60):
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"bastion serve exited: {proc.stderr.read().decode()[-2000:]}")
                try:
                    async with httpx.AsyncClient() as http:
                        if (await http.get(f"{url}/readyz")).status_code == 200:
                            break
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if proc.stderr:
            proc.stderr.close()


ClientFactory = Callable[..., contextlib.AbstractAsyncContextManager[Client]]


@pytest.fixture(params=TRANSPORTS)
def bastion_client(request: pytest.FixtureRequest, tmp_path: Path) -> ClientFactory:
    """`async with bastion_client(config_dict, mode=...) as client:` over the parametrized transport."""
    kind = request.param

    @contextlib.asynccontextmanager
    async def connect(config: dict[str, Any], **client_kwargs: Any) -> AsyncIterator[Client]:
        kwargs = {**CLIENT_CALLBACKS, **client_kwargs}
        if kind == "memory":
            gateway = Gateway(parse_config(config))
            await gateway.start()
            try:
                async with Client(client_transport(gateway), **kwargs) as client:
                    yield client
            finally:
                await gateway.aclose()
            return
        path = tmp_path / "bastion.yaml"
        path.write_text(yaml.safe_dump(config))
        if kind == "stdio":
            params = StdioServerParameters(
                command=sys.executable,
                args=["-m", "bastion.cli", "stdio", "--config", str(path)],
                env=bastion_env(),
            )
            async with Client(params, **kwargs) as client:
                yield client
            return
        if kind == "sse":
            async with _serve_http(path) as url, Client(sse_client(f"{url}/sse"), **kwargs) as client:
                yield client
            return
        async with _serve_http(path) as url, Client(f"{url}/mcp", **kwargs) as client:
            yield client

    return connect
