"""The ASGI middleware: 401 with the RFC 9728 challenge, metadata documents, principal in scope state."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bastion.auth.apikeys import ApiKeyStore
from bastion.auth.authenticator import Authenticator
from bastion.auth.config import AuthConfig
from bastion.auth.middleware import AuthMiddleware
from bastion.state import EmbeddedStateStore

CONFIG = AuthConfig.model_validate(
    {
        "enabled": True,
        "resource_url": "https://gw.example.test/mcp",
        "authorization_servers": ["https://idp.example.test"],
        "scopes_supported": ["mcp:tools"],
    }
)
METADATA_URL = "https://gw.example.test/.well-known/oauth-protected-resource/mcp"


async def whoami(request: Request) -> JSONResponse:
    principal = request.scope.get("state", {}).get("principal")
    return JSONResponse({"principal": getattr(principal, "name", None)})


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with EmbeddedStateStore(":memory:") as store:
        key, _ = await ApiKeyStore(store).create("alice", ["dev"])
        inner = Starlette(routes=[Route("/mcp", whoami, methods=["GET", "POST"]), Route("/healthz", whoami)])
        app = AuthMiddleware.from_config(inner, CONFIG, Authenticator.from_config(CONFIG, store))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c, key


async def test_a_request_without_credentials_gets_the_oauth_challenge(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    c, _ = client
    response = await c.post("/mcp", json={})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer resource_metadata="{METADATA_URL}"'
    assert response.json() == {"error": "unauthorized", "error_description": "missing"}


async def test_a_bad_credential_gets_invalid_token(client: tuple[httpx.AsyncClient, str]) -> None:
    c, key = client
    response = await c.post("/mcp", headers={"authorization": f"Bearer {key[:-2]}xx"})
    assert response.status_code == 401
    assert (
        response.headers["www-authenticate"]
        == f'Bearer error="invalid_token", resource_metadata="{METADATA_URL}"'
    )
    assert response.json()["error_description"] == "unknown_key"
    assert key not in response.text


async def test_a_valid_key_puts_the_principal_in_scope_state(client: tuple[httpx.AsyncClient, str]) -> None:
    c, key = client
    response = await c.post("/mcp", headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 200 and response.json() == {"principal": "alice"}


@pytest.mark.parametrize(
    "path", ["http://testserver//mcp", "/MCP", "/mcp/", "/api/keys", "/sse", "/messages/?session_id=1"]
)
async def test_path_variants_of_protected_prefixes_are_protected(
    client: tuple[httpx.AsyncClient, str], path: str
) -> None:
    c, _ = client
    assert (await c.get(path)).status_code == 401


async def test_unprotected_paths_pass_through(client: tuple[httpx.AsyncClient, str]) -> None:
    c, _ = client
    assert (await c.get("/healthz")).json() == {"principal": None}


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]
)
async def test_protected_resource_metadata_is_served(
    client: tuple[httpx.AsyncClient, str], path: str
) -> None:
    c, _ = client
    response = await c.get(path)
    assert response.status_code == 200
    assert response.json() == {
        "resource": "https://gw.example.test/mcp",
        "authorization_servers": ["https://idp.example.test"],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["mcp:tools"],
    }
