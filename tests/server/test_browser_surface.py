"""The browser and probe surface: credentialed CORS only for `ui.allowed_origins`; `/readyz` detail only to admins."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

import anyio
import httpx
import pytest

from bastion.app.http import build_http_app
from bastion.app.runtime import build_runtime
from bastion.auth.apikeys import ApiKeyStore
from bastion.config import parse_config
from tests.auth.test_credential_binding import secured_config, served
from tests.server.conftest import serve
from tests.server.test_middleware import _post, _stack, echo_length

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path", ["/api/keys", "/ui/", "/API/audit"])
async def test_a_page_on_another_loopback_port_cannot_call_the_dashboard_or_admin_api(path: str) -> None:
    app, _ = _stack(echo_length)
    response = await _post(app, host="127.0.0.1:8765", origin="http://127.0.0.1:9999", path=path)
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


async def test_only_ui_allowed_origins_get_credentialed_cors_on_the_admin_api() -> None:
    app, _ = _stack(
        echo_length, ui_origins=["https://ops.example.com"], allowed_origins=["https://x.example"]
    )
    allowed = await _post(app, origin="https://ops.example.com", path="/api/keys")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example.com"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    other = await _post(app, origin="https://x.example", path="/api/keys")  # an MCP origin is not a UI origin
    assert other.status_code == 403


async def test_same_origin_dashboard_requests_are_untouched() -> None:
    app, _ = _stack(echo_length)
    same = await _post(app, host="127.0.0.1:8765", origin="http://127.0.0.1:8765", path="/api/keys")
    assert same.status_code == 200 and "access-control-allow-origin" not in same.headers


@pytest.mark.integration
async def test_readyz_tells_anyone_only_whether_it_is_ready_and_admins_the_detail(tmp_path: Path) -> None:
    async with served(secured_config(tmp_path)) as (url, runtime, http):
        keys = ApiKeyStore(runtime.store)
        admin, _ = await keys.create("root", ["admin"])
        agent, _ = await keys.create("agent", ["dev"])
        with anyio.fail_after(60):  # /healthz answers before the upstreams connected; /readyz waits for them
            while not (anyone := await http.get(f"{url}/readyz")).json()["ready"]:
                await anyio.sleep(0.05)
        assert anyone.json() == {"ready": True}
        as_agent = await http.get(f"{url}/readyz", headers={"authorization": f"Bearer {agent}"})
        assert as_agent.json() == {"ready": True}
        as_admin = await http.get(f"{url}/readyz", headers={"authorization": f"Bearer {admin}"})
        assert as_admin.json()["upstreams"]["calc"]["state"] == "ready"
        assert as_admin.json()["upstreams"]["calc"]["isolation"] == "principal"


@pytest.mark.integration
async def test_healthz_answers_at_once_while_an_upstream_hangs_and_readyz_says_not_ready(
    tmp_path: Path,
) -> None:
    with socket.socket() as blackhole:  # accepts connections, never answers a byte
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(8)
        url = f"http://127.0.0.1:{blackhole.getsockname()[1]}/mcp"
        hanging = {"transport": "streamable-http", "url": url, "connect_timeout_seconds": 30}
        config = parse_config(
            {"servers": {"hung": hanging}, "state": {"path": ":memory:"}, "audit": {"enabled": False}}
        )
        runtime = build_runtime(config)
        async with (
            serve(build_http_app(runtime, host="127.0.0.1", port=0)) as base,
            httpx.AsyncClient() as http,
        ):
            with anyio.fail_after(2):
                while True:
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get(f"{base}/healthz")).status_code == 200:
                            break
                    await anyio.sleep(0.02)
            ready = await http.get(f"{base}/readyz")
            assert ready.status_code == 503 and ready.json()["ready"] is False
