"""With authentication on: sessions belong to their principal, and batches cannot smuggle a denied call."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from mcp import Client
from mcp.client.sse import sse_client

from bastion.app.http import build_http_app
from bastion.app.runtime import build_runtime
from bastion.auth.apikeys import ApiKeyStore
from bastion.config import parse_config
from bastion.pipeline.notice import NoticeKind
from tests.peers import calc_stdio
from tests.server.conftest import INIT_PARAMS, Recorder, SseReader, body, post_headers, request, serve

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@contextlib.asynccontextmanager
async def secured(
    tmp_path: Path, extra: dict[str, Any] | None = None
) -> AsyncIterator[tuple[str, Recorder, dict[str, str]]]:
    """`bastion serve` in-process with API keys on; yields (url, notices, {principal: key})."""
    config = parse_config(
        {
            "servers": {"calc": calc_stdio()},
            "state": {"path": str(tmp_path / "state.db")},
            "audit": {"enabled": False},
            "guardrails": {"enabled": False},
            "auth": {"enabled": True},
            **(extra or {}),
        }
    )
    runtime = build_runtime(config)
    recorder = Recorder()
    runtime.gateway.notice_observers.append(recorder)
    async with (
        serve(build_http_app(runtime, host="127.0.0.1", port=0)) as url,
        httpx.AsyncClient(timeout=60) as http,
    ):
        assert (await http.get(f"{url}/healthz")).status_code == 200  # the lifespan has opened the key store
        keys = {
            name: (await ApiKeyStore(runtime.store).create(name, ["dev"]))[0] for name in ("alice", "bob")
        }
        yield url, recorder, keys


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_a_session_id_presented_with_another_principals_key_is_404_and_audited(tmp_path):
    async with secured(tmp_path) as (url, recorder, keys), httpx.AsyncClient() as http:
        init = await http.post(
            f"{url}/mcp",
            content=body(request(1, "initialize", INIT_PARAMS)),
            headers={**post_headers(), **_auth(keys["alice"])},
        )
        sid = init.headers["mcp-session-id"]
        ping = body(request(2, "ping"))
        stolen = await http.post(
            f"{url}/mcp", content=ping, headers={**post_headers(sid), **_auth(keys["bob"])}
        )
        unknown = await http.post(
            f"{url}/mcp", content=ping, headers={**post_headers("x" * 32), **_auth(keys["bob"])}
        )
        assert stolen.status_code == unknown.status_code == 404
        assert stolen.json() == unknown.json()  # no oracle: a foreign session looks exactly like no session
        for verb in ("GET", "DELETE"):
            response = await http.request(
                verb, f"{url}/mcp", headers={"mcp-session-id": sid, **_auth(keys["bob"])}
            )
            assert response.status_code == 404
        await recorder.wait_for(lambda: len(recorder.kinds(NoticeKind.AUTH_FAILURE)) >= 3)
        notice = recorder.kinds(NoticeKind.AUTH_FAILURE)[0]
        assert notice.principal == "bob" and notice.detail["reason"] == "session_principal_mismatch"
        assert not any(key in repr(recorder.notices) for key in keys.values())
        owner = await http.post(
            f"{url}/mcp", content=ping, headers={**post_headers(sid), **_auth(keys["alice"])}
        )
        assert owner.json()["result"] == {}


async def test_a_legacy_sse_session_is_bound_to_its_principal(tmp_path):
    async with secured(tmp_path) as (url, recorder, keys), httpx.AsyncClient(timeout=10) as http:
        async with http.stream("GET", f"{url}/sse", headers=_auth(keys["alice"])) as stream:
            reader = SseReader(stream)  # holds the body iterator: dropping it would close the stream
            (first,) = await reader.take(1)
            assert first["event"] == "endpoint" and first["data"].startswith("/messages?sessionId=")
            endpoint = first["data"]
            ping = body(request(1, "ping"))
            stolen = await http.post(
                f"{url}{endpoint}", content=ping, headers={**post_headers(), **_auth(keys["bob"])}
            )
            assert stolen.status_code == 404
            mine = await http.post(
                f"{url}{endpoint}", content=ping, headers={**post_headers(), **_auth(keys["alice"])}
            )
            assert mine.status_code == 202
        await recorder.wait_for(lambda: bool(recorder.kinds(NoticeKind.AUTH_FAILURE)))


async def test_the_sdk_client_works_with_an_api_key_over_both_http_transports(tmp_path):
    import httpx2

    async with secured(tmp_path) as (url, _recorder, keys):
        async with httpx2.AsyncClient(headers=_auth(keys["alice"])) as http2:
            from mcp.client.streamable_http import streamable_http_client

            async with Client(
                streamable_http_client(f"{url}/mcp", http_client=http2), mode="legacy"
            ) as client:
                assert (await client.call_tool("calc__add", {"a": 1, "b": 1})).structured_content == {
                    "result": 2
                }
        async with Client(sse_client(f"{url}/sse", headers=_auth(keys["bob"])), mode="legacy") as client:
            assert (await client.call_tool("calc__add", {"a": 2, "b": 2})).structured_content == {"result": 4}


POLICY = {
    "policy": {
        "default": "deny",
        "principals": {"anonymous": ["reader"]},
        "roles": {"reader": {"rules": [{"id": "adds", "effect": "allow", "tools": ["calc__add"]}]}},
    }
}


async def test_a_denied_call_inside_a_batch_is_denied_exactly_like_a_lone_one(tmp_path):
    config = parse_config(
        {
            "servers": {"calc": calc_stdio()},
            "state": {"path": str(tmp_path / "state.db")},
            "audit": {"enabled": False},
            "guardrails": {"enabled": False},
            **POLICY,
        }
    )
    runtime = build_runtime(config)
    async with serve(build_http_app(runtime, host="127.0.0.1", port=0)) as url, httpx.AsyncClient() as http:
        mcp = f"{url}/mcp"
        init = await http.post(
            mcp,
            content=body(request(0, "initialize", {**INIT_PARAMS, "protocolVersion": "2025-03-26"})),
            headers=post_headers(),
        )
        sid = init.headers["mcp-session-id"]
        echo = request(5, "tools/call", {"name": "calc__echo", "arguments": {"text": "hi"}})
        lone = (await http.post(mcp, content=body(echo), headers=post_headers(sid))).json()
        add = request(6, "tools/call", {"name": "calc__add", "arguments": {"a": 1, "b": 2}})
        batch = (
            await http.post(mcp, content=orjson.dumps([add, {**echo, "id": 5}]), headers=post_headers(sid))
        ).json()
        replies = {r["id"]: r for r in batch}
        assert replies[6]["result"]["structuredContent"] == {"result": 3}
        assert replies[5] == lone
        assert "error" in lone or lone["result"].get("isError")
