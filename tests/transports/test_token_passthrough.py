"""No token passthrough (MCP security best practices): the credential a client presents to Bastion is checked and
kept by Bastion; an upstream sees only the credentials configured for it, never the client's."""

from __future__ import annotations

import httpx
import orjson
import pytest

from bastion.app.http import build_http_app
from bastion.app.runtime import build_runtime
from bastion.auth.apikeys import ApiKeyStore
from bastion.config import parse_config
from tests.peers import PYTHON, ROOT, free_port
from tests.server.conftest import INIT_PARAMS, body, post_headers, request, serve
from tests.transports.http_peers import Peer, running

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_the_clients_credential_never_reaches_an_upstream_only_the_configured_one_does(tmp_path):
    port = free_port()
    faulty = Peer([PYTHON, str(ROOT / "tests/servers/faulty.py"), str(port)], port, "/mcp")
    async with running(faulty) as peer:
        config = parse_config(
            {
                "servers": {
                    "up": {
                        "transport": "streamable-http",
                        "url": peer.url,
                        "headers": {"X-Upstream-Key": "up-1"},
                    }
                },
                "state": {"path": str(tmp_path / "state.db")},
                "audit": {"enabled": False},
                "guardrails": {"enabled": False},
                "auth": {"enabled": True},
            }
        )
        runtime = build_runtime(config)
        async with (
            serve(build_http_app(runtime, host="127.0.0.1", port=0)) as url,
            httpx.AsyncClient(timeout=60) as http,
        ):
            assert (await http.get(f"{url}/healthz")).status_code == 200
            key, _ = await ApiKeyStore(runtime.store).create("alice", ["dev"])
            auth = {"authorization": f"Bearer {key}"}
            init = await http.post(
                f"{url}/mcp",
                content=body(request(0, "initialize", INIT_PARAMS)),
                headers={**post_headers(), **auth},
            )
            sid = init.headers["mcp-session-id"]
            headers = {**post_headers(sid, "2025-11-25"), **auth}
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            await http.post(f"{url}/mcp", content=body(initialized), headers=headers)
            reply = await http.post(
                f"{url}/mcp",
                content=body(request(1, "tools/call", {"name": "up__seen_headers", "arguments": {}})),
                headers=headers,
            )
            seen = reply.json()["result"]["structuredContent"]
            assert seen["x-upstream-key"] == "up-1"
            assert "authorization" not in seen and "x-api-key" not in seen
            assert key not in orjson.dumps(seen).decode()
