"""Two `bastion serve` replicas behind nginx, on one Redis and one PostgreSQL, with the default guardrails.

What one replica learns or decides, the other applies: rate limits, tool approvals, revoked keys, terminated
sessions, policy changes. Sessions work through nginx with affinity on `Mcp-Session-Id` and without it. Both
replicas' audit chains land in PostgreSQL and verify.
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import asyncpg
import httpx
import httpx2
import pytest
from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.cluster.conftest import running_cluster
from tests.cluster.harness import Cluster, default_policy
from tests.web.shifty import CHANGED as CHANGED_DESCRIPTION

# Starting replicas on two busy cores can take a minute by itself: a generous bound for setup and test.
pytestmark = [pytest.mark.anyio, pytest.mark.cluster, pytest.mark.integration, pytest.mark.timeout(600)]

INIT = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "raw-cluster", "version": "1"},
}
ACCEPT = "application/json, text/event-stream"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from running_cluster(tmp_path_factory, guardrails={"enabled": True})


@contextlib.asynccontextmanager
async def sdk(base: str, key: str, mode: str = "legacy") -> AsyncIterator[Client]:
    """The official SDK client on `base`/mcp, authenticating with an API key."""
    async with (
        httpx2.AsyncClient(headers={"x-api-key": key}, timeout=httpx2.Timeout(30, read=120)) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http), mode=mode) as client,
    ):
        yield client


class Raw:
    """Raw Streamable HTTP (handshake era) with httpx: the session id is ours to send wherever we like."""

    def __init__(self, http: httpx.AsyncClient, key: str) -> None:
        self.http = http
        self.key = key
        self.ids = iter(range(1, 1_000_000))

    def headers(self, session: str | None = None) -> dict[str, str]:
        headers = {"x-api-key": self.key, "content-type": "application/json", "accept": ACCEPT}
        if session is not None:
            headers |= {"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        return headers

    async def open(self, base: str) -> str:
        message = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT}
        response = await self.http.post(f"{base}/mcp", json=message, headers=self.headers())
        assert response.status_code == 200, response.text
        session = response.headers["mcp-session-id"]
        done = await self.http.post(
            f"{base}/mcp",
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers=self.headers(session),
        )
        assert done.status_code == 202, done.text
        return session

    async def call(self, base: str, session: str, tool: str, arguments: dict[str, Any]) -> httpx.Response:
        message = {
            "jsonrpc": "2.0",
            "id": next(self.ids),
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
        return await self.http.post(f"{base}/mcp", json=message, headers=self.headers(session))


def text_of(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def eventually(check: Callable[[], Any], seconds: float = 20) -> Any:
    """Poll `check` (sync or async) until truthy: the replicas are other processes, nothing signals us."""
    with anyio.fail_after(seconds):
        while True:
            result = check()
            if hasattr(result, "__await__"):
                result = await result
            if result:
                return result
            await anyio.sleep(0.05)


async def test_a_rate_limit_is_shared_by_both_replicas(cluster: Cluster) -> None:
    one, two = cluster.members["r1"], cluster.members["r2"]
    outcomes: list[str] = []
    async with (
        sdk(one.url, cluster.keys["bob"], "2026-07-28") as a,
        sdk(two.url, cluster.keys["bob"], "2026-07-28") as b,
    ):
        for n in range(10):  # calc__add allows 6 calls per principal per hour, cluster-wide
            try:
                result = await (a if n % 2 else b).call_tool("calc__add", {"a": n, "b": 1})
                outcomes.append("ok" if result.structured_content == {"result": n + 1} else "wrong")
            except MCPError as exc:
                outcomes.append(f"{exc.code}:{(exc.data or {}).get('reason')}")
    assert outcomes == ["ok"] * 6 + ["-31002:rate_limited"] * 4


async def test_a_tool_change_approved_through_one_replica_is_approved_on_both(cluster: Cluster) -> None:
    one, two = cluster.members["r1"], cluster.members["r2"]
    async with sdk(one.url, cluster.keys["alice"]) as a, sdk(two.url, cluster.keys["alice"]) as b:
        for client in (a, b):
            assert "shifty__weather" in {t.name for t in (await client.list_tools()).tools}
        for client in (a, b):  # each replica runs its own shifty process: the rug is pulled under both
            assert text_of(await client.call_tool("shifty__rug", {})) == "changed"

        async def hidden(client: Client) -> bool:
            return "shifty__weather" not in {t.name for t in (await client.list_tools()).tools}

        await eventually(lambda: hidden(a))
        await eventually(lambda: hidden(b))
        admin = {"authorization": f"Bearer {cluster.keys['root']}"}
        async with httpx.AsyncClient(headers=admin) as http:
            changes = (await http.get(f"{one.url}/api/tool-changes")).json()["changes"]
            (change,) = [c for c in changes if (c["server"], c["tool"]) == ("shifty", "weather")]
            approved = await http.post(
                f"{one.url}/api/tool-changes/shifty/weather/approve",
                json={"pending_hash": change["pending_hash"]},
            )
            assert approved.status_code == 200, approved.text

        async def served(client: Client) -> str:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            weather = tools.get("shifty__weather")
            return weather.description or "" if weather is not None else ""

        assert await eventually(lambda: served(b), seconds=10) == CHANGED_DESCRIPTION
        assert await served(a) == CHANGED_DESCRIPTION
        assert text_of(await b.call_tool("shifty__weather", {"city": "Oslo"})) == "sunny in Oslo"


async def test_sessions_stay_on_one_replica_with_affinity_and_work_without_it(cluster: Cluster) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        raw = Raw(http, cluster.keys["alice"])
        pinned = [await raw.open(cluster.nginx_url) for _ in range(8)]
        # Three, so that round-robin (one request per session per round) sends each to both replicas in turn.
        spread = [await raw.open(cluster.spread_url) for _ in range(3)]
        for round_ in range(3):
            for session in pinned:
                response = await raw.call(cluster.nginx_url, session, "calc__echo", {"text": f"p{round_}"})
                assert response.status_code == 200 and "error" not in response.json(), response.text
            for session in spread:
                response = await raw.call(cluster.spread_url, session, "calc__echo", {"text": f"s{round_}"})
                assert response.status_code == 200 and "error" not in response.json(), response.text
    ours = set(pinned + spread)
    expected = (
        len(ours) * 4
    )  # `initialized` and three calls each; nginx logs a request just after answering it
    log = await eventually(
        lambda: (
            (rows := cluster.access_log())
            and len([r for r in rows if r.session in ours]) == expected
            and rows
        )
    )
    served = {s: {row.replica for row in log if row.session == s} for s in pinned + spread}
    assert all(len(served[s]) == 1 for s in pinned), served  # affinity: one replica per session
    assert all(served[s] == {"r1", "r2"} for s in spread), served  # no affinity: both replicas, still working
    initializes = {row.replica for row in log if row.port == cluster.nginx_port and not row.session}
    assert initializes == {"r1", "r2"}  # with affinity, requests without a session id are still spread


async def test_a_deleted_session_cannot_be_revived_on_another_replica(cluster: Cluster) -> None:
    one, two = cluster.members["r1"], cluster.members["r2"]
    async with httpx.AsyncClient(timeout=30) as http:
        raw = Raw(http, cluster.keys["alice"])
        session = await raw.open(one.url)
        assert (await raw.call(two.url, session, "calc__echo", {"text": "on r2"})).status_code == 200
        deleted = await http.delete(f"{one.url}/mcp", headers=raw.headers(session))
        assert deleted.status_code == 204
        for base in (two.url, one.url, cluster.spread_url):
            response = await raw.call(base, session, "calc__echo", {"text": "again"})
            assert response.status_code == 404, response.text
            error = response.json()["error"]
            assert (error["code"], error["data"]) == (
                -32001,
                {"reason": "session_not_found", "session": "terminated"},
            )
        stranger = Raw(http, cluster.keys["bob"])
        response = await stranger.call(two.url, session, "calc__echo", {"text": "mine now?"})
        assert response.status_code == 404
        assert response.json()["error"]["data"] == {"reason": "session_not_found"}  # nothing told to others


async def test_cluster_status_counts_the_sessions_of_both_replicas(cluster: Cluster) -> None:
    one, two = cluster.members["r1"], cluster.members["r2"]

    def status() -> dict[str, Any]:
        result: dict[str, Any] = json.loads(cluster.cli("cluster", "status", "--json").stdout)
        return result

    before = status()["sessions"]
    async with sdk(one.url, cluster.keys["alice"]) as a, sdk(two.url, cluster.keys["bob"]) as b:
        await a.list_tools()
        await b.list_tools()
        now = await eventually(lambda: (s := status())["sessions"] == before + 2 and s)
        assert set(now["replicas"]) == {"r1", "r2"}
        assert all(r["ready"] and r["sessions"] >= 1 for r in now["replicas"].values())
        assert len({r["policy"] for r in now["replicas"].values()}) == 1
    await eventually(lambda: status()["sessions"] == before)


async def test_a_key_revoked_with_the_cli_is_refused_by_both_replicas(cluster: Cluster) -> None:
    key = cluster.cli("keys", "create", "--principal", "dave", "--roles", "user").stdout.strip()
    key_id = key.split("_")[1]
    async with httpx.AsyncClient(timeout=30) as http:
        raw = Raw(http, key)
        sessions = {name: await raw.open(r.url) for name, r in cluster.members.items()}
        cluster.cli("keys", "revoke", key_id)
        for name, replica in cluster.members.items():
            response = await raw.call(replica.url, sessions[name], "calc__echo", {"text": "revoked?"})
            assert response.status_code == 401, response.text


async def test_audit_events_of_both_replicas_are_in_postgres_and_both_chains_verify(cluster: Cluster) -> None:
    marker = f"audit-{secrets.token_hex(4)}"
    async with (
        sdk(cluster.members["r1"].url, cluster.keys["alice"]) as a,
        sdk(cluster.members["r2"].url, cluster.keys["alice"]) as b,
    ):
        for client in (a, b):
            assert text_of(await client.call_tool("calc__echo", {"text": marker})) == marker
    conn = await asyncpg.connect(cluster.pg_url)
    try:
        rows = await conn.fetch(
            "SELECT replica, count(*) AS n FROM bastion_audit_events WHERE content LIKE $1 GROUP BY replica",
            f"%{marker}%",
        )
    finally:
        await conn.close()
    assert {r["replica"]: r["n"] for r in rows} == {"r1": 1, "r2": 1}
    verified = cluster.cli("audit", "verify", "--json")
    report = json.loads(verified.stdout)
    chains = {c["replica"]: c for c in report["chains"]}
    assert report["ok"] and set(chains) == {"r1", "r2"}
    assert all(c["ok"] and c["events"] > 0 for c in chains.values())


async def test_a_policy_change_reaches_both_replicas(cluster: Cluster) -> None:
    one, two = cluster.members["r1"], cluster.members["r2"]
    strict = default_policy()
    strict["policy"]["roles"]["user"] = {
        "rules": [{"id": "no-echo", "effect": "allow", "tools": ["calc__add"]}]
    }
    try:
        cluster.write_policy(strict)  # the shared file: each replica's watcher reloads it
        async with (
            sdk(one.url, cluster.keys["alice"], "2026-07-28") as a,
            sdk(two.url, cluster.keys["alice"], "2026-07-28") as b,
        ):
            for client in (a, b):

                async def refused(client: Client = client) -> bool:
                    try:
                        await client.call_tool("calc__echo", {"text": "allowed?"})
                    except MCPError as exc:
                        return exc.code == -32602  # a tool the policy hides is an unknown tool
                    return False

                await eventually(refused)
        reloaded = cluster.cli("policy", "reload")  # every replica re-reads it now, and confirms
        assert "every replica runs policy" in reloaded.stdout
    finally:
        cluster.write_policy(default_policy())
        cluster.cli("cluster", "reload")
