"""How the dashboard plugs into the HTTP app: `ui:` switched off, auth switched off, OIDC logins, shutdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from bastion.web.api import sse_events
from bastion.web.config import UIConfig
from bastion.web.sessions import COOKIE_NAME
from tests.auth.conftest import ISSUER, RESOURCE, Issuer, issuer  # noqa: F401  (the JWKS issuer fixture)
from tests.web.harness import ORIGIN, bearer, login, memory_stack

pytestmark = pytest.mark.anyio


def test_the_ui_section_is_optional_and_strict() -> None:
    from bastion.config.loader import parse_config
    from bastion.errors import ConfigError

    assert parse_config({}).ui == UIConfig()
    assert parse_config({"ui": {"admin_role": "ops"}}).ui.admin_role == "ops"
    with pytest.raises(ConfigError) as bad:
        parse_config({"ui": {"colour": "blue"}})
    assert bad.value.path.startswith("ui")


async def test_with_the_dashboard_off_ui_is_absent_and_api_stays_behind_the_bearer_middleware(
    tmp_path: Path,
) -> None:
    def off(data: dict[str, Any]) -> None:
        data["ui"] = {"enabled": False}

    async with memory_stack(tmp_path, tweak=off) as stack, stack.client() as client:
        assert stack.runtime.dashboard is None
        assert (await client.get("/ui/login")).status_code == 404
        anonymous = await client.get("/api/overview")
        assert anonymous.status_code == 401 and "resource_metadata" not in anonymous.text
        assert (await client.get("/api/overview", headers=bearer(stack.admin_key))).status_code == 404


async def test_with_auth_off_the_dashboard_still_needs_an_admin_login(tmp_path: Path) -> None:
    def open_gateway(data: dict[str, Any]) -> None:
        data["auth"] = {"enabled": False}

    async with memory_stack(tmp_path, tweak=open_gateway) as stack, stack.client() as client:
        assert (await client.get("/api/overview")).status_code == 401
        assert (await client.get("/ui/live")).status_code == 303
        assert (await client.get("/api/overview", headers=bearer(stack.agent_key))).status_code == 403
        assert (await client.get("/api/overview", headers=bearer(stack.admin_key))).status_code == 200
        await login(client, stack.admin_key)
        assert (await client.get("/ui/overview")).status_code == 200


@pytest.mark.integration
async def test_an_oidc_token_with_the_admin_role_logs_in_for_no_longer_than_the_token_lives(
    tmp_path: Path,
    issuer: Issuer,  # noqa: F811
) -> None:
    def oidc(data: dict[str, Any]) -> None:
        data["auth"] = {
            "enabled": True,
            "resource_url": RESOURCE,
            "authorization_servers": [ISSUER],
            "jwt": {"jwks_url": issuer.url, "issuer": ISSUER},
        }

    async with memory_stack(tmp_path, tweak=oidc) as stack, stack.client() as client:
        operator = issuer.rs256(sub="carol", groups=["admin"], exp=int(issuer.claims()["iat"]) + 120)
        developer = issuer.rs256(sub="dave", groups=["dev"])
        assert (await client.get("/api/session", headers=bearer(developer))).status_code == 403
        assert (await client.get("/api/session", headers=bearer(operator))).json()["principal"] == "carol"
        refused = await client.post("/ui/login", data={"credential": developer}, headers={"origin": ORIGIN})
        assert refused.status_code == 403
        response = await client.post("/ui/login", data={"credential": operator}, headers={"origin": ORIGIN})
        assert response.status_code == 303
        max_age = int(response.headers["set-cookie"].lower().split("max-age=")[1].split(";")[0])
        assert 0 < max_age <= 120  # not the 8-hour default: the token expires first
        session = (await client.get("/api/session")).json()
        assert session["principal"] == "carol" and session["via"] == "session"
        assert response.cookies[COOKIE_NAME] not in operator


async def test_closing_the_feed_ends_open_live_streams(tmp_path: Path) -> None:
    async with memory_stack(tmp_path) as stack:
        feed = stack.dashboard.feed
        stream = sse_events(feed, {}, after=None, keepalive=5)
        with anyio.fail_after(5):
            assert await anext(stream) == b"retry: 3000\n\n"
            feed.close()
            with pytest.raises(StopAsyncIteration):
                await anext(stream)
        assert feed.subscribers == 0
