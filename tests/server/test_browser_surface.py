"""The browser and probe surface: credentialed CORS only for `ui.allowed_origins`; `/readyz` detail only to admins."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.auth.apikeys import ApiKeyStore
from tests.auth.test_credential_binding import secured_config, served
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
        anyone = await http.get(f"{url}/readyz")
        assert anyone.json() == {"ready": True}
        as_agent = await http.get(f"{url}/readyz", headers={"authorization": f"Bearer {agent}"})
        assert as_agent.json() == {"ready": True}
        as_admin = await http.get(f"{url}/readyz", headers={"authorization": f"Bearer {admin}"})
        assert as_admin.json()["upstreams"]["calc"]["state"] == "ready"
        assert as_admin.json()["upstreams"]["calc"]["isolation"] == "principal"
