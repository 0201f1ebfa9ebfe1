"""Sessions are bound to the credential that opened them, not to the principal; dead credentials end sessions.

Real HTTP on 127.0.0.1, a real stdio upstream, real SQLite and Redis stores, real signed JWTs.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from bastion.app.http import build_http_app
from bastion.app.runtime import Runtime, build_runtime
from bastion.auth.apikeys import ApiKeyStore
from bastion.auth.principal import Principal
from bastion.auth.sweep import CredentialSweeper
from bastion.config import parse_config
from bastion.core.gateway import Gateway
from bastion.state import open_state_store
from bastion.state.config import StateConfig
from bastion.types import binding_of
from tests.auth.conftest import ISSUER, RESOURCE, Issuer
from tests.peers import calc_stdio
from tests.server.conftest import INIT_PARAMS, body, post_headers, request, serve

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

REDIS_URL = "redis://127.0.0.1:6379/0"


def secured_config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    """A calc upstream behind API-key authentication (more `auth` keys in `extra["auth"]`)."""
    return {
        "servers": {"calc": calc_stdio()},
        "state": {"path": str(tmp_path / "state.db")},
        "audit": {"enabled": False},
        "guardrails": {"enabled": False},
        "auth": {"enabled": True, **extra.pop("auth", {})},
        **extra,
    }


@contextlib.asynccontextmanager
async def served(config: dict[str, Any]) -> AsyncIterator[tuple[str, Runtime, httpx.AsyncClient]]:
    runtime = build_runtime(parse_config(config))
    async with (
        serve(build_http_app(runtime, host="127.0.0.1", port=0)) as url,
        httpx.AsyncClient(timeout=60) as http,
    ):
        assert (await http.get(f"{url}/healthz")).status_code == 200
        yield url, runtime, http


async def _open(http: httpx.AsyncClient, url: str, credential: str) -> str:
    init = await http.post(
        f"{url}/mcp",
        content=body(request(1, "initialize", INIT_PARAMS)),
        headers={**post_headers(), "authorization": f"Bearer {credential}"},
    )
    assert init.status_code == 200
    return str(init.headers["mcp-session-id"])


async def _ping(http: httpx.AsyncClient, url: str, sid: str, credential: str) -> httpx.Response:
    return await http.post(
        f"{url}/mcp",
        content=body(request(2, "ping")),
        headers={**post_headers(sid), "authorization": f"Bearer {credential}"},
    )


async def _until(predicate: Any, seconds: float = 10) -> None:
    with anyio.fail_after(seconds):
        while not predicate():
            await anyio.sleep(0.02)


async def test_another_key_of_the_same_principal_on_a_session_is_404_like_an_unknown_session(tmp_path):
    async with served(secured_config(tmp_path)) as (url, runtime, http):
        keys = ApiKeyStore(runtime.store)
        admin, _ = await keys.create("alice", ["admin"])
        low, _ = await keys.create("alice", ["reader"])
        sid = await _open(http, url, admin)
        swapped = await _ping(http, url, sid, low)
        unknown = await _ping(http, url, "x" * 32, low)
        assert swapped.status_code == unknown.status_code == 404
        assert swapped.json() == unknown.json()
        assert (await _ping(http, url, sid, admin)).status_code == 200


async def test_revoking_the_key_that_opened_a_session_ends_that_session(tmp_path):
    async with served(secured_config(tmp_path)) as (url, runtime, http):
        keys = ApiKeyStore(runtime.store)
        key, info = await keys.create("alice", ["admin"])
        other, _ = await keys.create("alice", ["admin"])
        sid = await _open(http, url, key)
        kept = await _open(http, url, other)
        await keys.revoke(info.key_id)
        await _until(lambda: sid not in runtime.gateway.sessions)
        assert kept in runtime.gateway.sessions  # only the revoked credential's sessions end
        assert (await _ping(http, url, sid, key)).status_code == 401


async def test_a_jwt_of_the_same_subject_with_fewer_groups_cannot_use_a_session_opened_by_another_token(
    tmp_path: Path, issuer: Issuer
) -> None:
    key_file = tmp_path / "issuer.pem"
    key_file.write_bytes(issuer.rsa_public_pem())
    jwt_auth = {
        "jwt": {"issuer": ISSUER, "public_key_file": str(key_file)},
        "resource_url": RESOURCE,
        "authorization_servers": [ISSUER],
    }
    async with served(secured_config(tmp_path, auth=jwt_auth)) as (url, runtime, http):
        admin_token = issuer.rs256(groups=["admin"], jti="t-admin")
        plain_token = issuer.rs256(groups=[], jti="t-plain")
        sid = await _open(http, url, admin_token)
        assert (await _ping(http, url, sid, plain_token)).status_code == 404
        session = runtime.gateway.sessions[sid]
        assert session.principal.credential.startswith(f"jwt:{ISSUER}|alice|")
        assert session.principal.token_digest in session.principal.credential


async def test_a_session_ends_when_the_token_that_opened_it_expires() -> None:
    now = [1000.0]
    gateway = Gateway(parse_config({"servers": {}}))
    token = Principal(name="alice", method="jwt", credential="jwt:i|alice|d1", expires_at=1010.0)
    key = Principal(name="alice", method="api_key", credential="api_key:k1")
    expiring = await gateway.open_session(transport="memory", outbound=_Nowhere(), principal=token)
    lasting = await gateway.open_session(transport="memory", outbound=_Nowhere(), principal=key)
    sweeper = CredentialSweeper(gateway, None, clock=lambda: now[0])
    assert await sweeper.sweep() == 0
    now[0] = 1010.0
    assert await sweeper.sweep() == 1
    assert expiring.closed and not lasting.closed


async def test_revoking_a_key_ends_its_sessions_on_every_replica_sharing_redis(tmp_path):
    prefix = f"bastion-iso-{secrets.token_hex(6)}:"
    state = {"backend": "redis", "url": REDIS_URL, "key_prefix": prefix}
    replicas = [build_runtime(parse_config(secured_config(tmp_path, state=state))) for _ in range(2)]
    admin = open_state_store(StateConfig(backend="redis", url=REDIS_URL, key_prefix=prefix))
    async with admin:
        try:
            for runtime in replicas:
                await runtime.gateway.start(wait=False)
            key, info = await ApiKeyStore(admin).create("alice", ["admin"])
            sessions = []
            for runtime in replicas:
                principal = await runtime.authenticator.authenticate({"authorization": f"Bearer {key}"})
                assert binding_of(principal) == f"api_key:{info.key_id}"
                sessions.append(
                    await runtime.gateway.open_session(
                        transport="memory", outbound=_Nowhere(), principal=principal
                    )
                )
            started = time.monotonic()
            await ApiKeyStore(admin).revoke(info.key_id)
            await _until(lambda: all(s.closed for s in sessions), seconds=5)
            assert time.monotonic() - started < 2  # within a sweep (0.5 s) and a store read, on both replicas
        finally:
            for runtime in replicas:
                await runtime.gateway.aclose()
            keys = [k async for k in admin._redis.scan_iter(match=f"{prefix}*")]  # type: ignore[attr-defined]
            if keys:
                await admin._redis.delete(*keys)  # type: ignore[attr-defined]


class _Nowhere:
    """An outbound for sessions whose client never reads (these tests only watch sessions end)."""

    async def send(self, message: Any, related: Any = None) -> None:
        return None
