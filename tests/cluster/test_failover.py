"""A replica killed with SIGKILL under load: no answered call lacks its audit event, nobody is stranded.

Each test starts its own cluster (rug-pull pins only: these tests are about failover, not detection).
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Iterator

import anyio
import asyncpg
import httpx
import pytest
from mcp import Client, types

from tests.cluster.conftest import DETECTORS_OFF, running_cluster
from tests.cluster.harness import Cluster
from tests.cluster.test_cluster import Raw, eventually, sdk, text_of

# Starting replicas on two busy cores can take a minute by itself: a generous bound for setup and test.
pytestmark = [pytest.mark.anyio, pytest.mark.cluster, pytest.mark.integration, pytest.mark.timeout(600)]

PER_REPLICA = 3
"""Sessions each replica must hold before the kill."""
AFTER_KILL = 3
"""Successful calls every client must make after the kill."""


@pytest.fixture
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from running_cluster(tmp_path_factory, guardrails=DETECTORS_OFF)


@pytest.fixture
def unsealed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from running_cluster(tmp_path_factory, guardrails=DETECTORS_OFF, secret=None)


async def test_killing_a_replica_mid_load_loses_no_audit_event_and_strands_no_client(sealed: Cluster) -> None:
    cluster = sealed
    base = cluster.nginx_url
    successes: list[str] = []
    after: dict[str, int] = defaultdict(int)
    errors: dict[str, list[str]] = defaultdict(list)
    killed = anyio.Event()
    stop = anyio.Event()
    async with httpx.AsyncClient(timeout=30) as http:
        raw = Raw(http, cluster.keys["alice"])
        owners: dict[str, str] = {}
        with anyio.fail_after(60):  # sessions until each replica holds a few (ids hash onto replicas)
            while min(list(owners.values()).count(name) for name in ("r1", "r2")) < PER_REPLICA:
                session = await raw.open(base)
                assert (await raw.call(base, session, "calc__echo", {"text": "warm-up"})).status_code == 200
                owners[session] = await eventually(  # nginx logs a request just after answering it
                    lambda session=session: next(
                        (r.replica for r in cluster.access_log() if r.session == session), ""
                    )
                )

        async def raw_worker(n: int, session: str) -> None:
            for i in range(1_000_000):
                if stop.is_set():
                    return
                text = f"raw{n}-{i}"
                try:
                    response = await raw.call(base, session, "calc__echo", {"text": text})
                except httpx.TransportError as exc:
                    errors[session].append(type(exc).__name__)
                    continue
                body = (
                    response.json()
                    if response.headers.get("content-type", "").startswith("application/json")
                    else {}
                )
                if (
                    response.status_code == 200
                    and body.get("result", {}).get("content", [{}])[0].get("text") == text
                ):
                    successes.append(text)
                    after[session] += killed.is_set()
                else:
                    errors[session].append(str(response.status_code))

        async def sdk_worker(n: int) -> None:
            name = f"sdk{n}"
            async with sdk(base, cluster.keys["bob"]) as client:
                for i in range(1_000_000):
                    if stop.is_set():
                        return
                    text = f"{name}-{i}"
                    try:
                        result = await client.call_tool("calc__echo", {"text": text})
                    except Exception as exc:  # noqa: BLE001 - the SDK surfaces nginx's 502 as any error; go on
                        errors[name].append(type(exc).__name__)
                        continue
                    if text_of(result) == text:
                        successes.append(text)
                        after[name] += killed.is_set()

        async with anyio.create_task_group() as tg:
            for n, session in enumerate(owners):
                tg.start_soon(raw_worker, n, session)
            for n in range(2):
                tg.start_soon(sdk_worker, n)
            await eventually(lambda: len(successes) >= 60, seconds=60)
            cluster.kill("r2")
            killed.set()
            clients = [*owners, "sdk0", "sdk1"]
            await eventually(lambda: all(after[c] >= AFTER_KILL for c in clients), seconds=90)
            stop.set()

    survivors = [s for s, replica in owners.items() if replica == "r1"]
    assert all(errors[s] == [] for s in survivors), {s[:12]: errors[s] for s in survivors}
    # Clients of the killed replica saw at most the call in flight fail, clearly, then carried on: nginx answers
    # 502 when the replica died before its response began, and cuts the connection when it died mid-response.
    in_flight = {"502", "RemoteProtocolError", "ReadError"}
    for session in [s for s, replica in owners.items() if replica == "r2"]:
        assert set(errors[session]) <= in_flight and len(errors[session]) <= 1, errors[session]

    audited = await audited_texts(cluster.pg_url)
    missing = [t for t in successes if t not in audited]
    assert missing == [], f"{len(missing)} answered calls have no audit event"
    verify(cluster, {"r1", "r2"})

    cluster.launch(
        cluster.members["r2"]
    )  # it comes back: its chain continues where the database says it ended
    cluster.wait_ready(cluster.members["r2"])
    async with sdk(cluster.members["r2"].url, cluster.keys["alice"]) as client:
        assert text_of(await client.call_tool("calc__echo", {"text": "back"})) == "back"
    verify(cluster, {"r1", "r2"})


async def test_a_client_of_a_killed_replica_is_told_so_and_starts_a_fresh_session(unsealed: Cluster) -> None:
    cluster = unsealed
    one, two = cluster.members["r1"], cluster.members["r2"]
    async with httpx.AsyncClient(timeout=30) as http:
        raw = Raw(http, cluster.keys["alice"])
        session = await raw.open(two.url)
        assert (await raw.call(two.url, session, "calc__echo", {"text": "before"})).status_code == 200
        cluster.kill("r2")
        seen: list[str] = []

        async def told_gone() -> bool:
            response = await raw.call(
                one.url, session, "calc__echo", {"text": "after"}
            )  # the LB's next choice
            assert response.status_code == 404, response.text
            seen.append(response.json()["error"]["data"].get("session", ""))
            return seen[-1] == "replica_gone"

        await eventually(told_gone, seconds=30)  # once r2's heartbeat has lapsed (a few seconds)
        assert set(seen) <= {"held_elsewhere", "replica_gone"}
    async with sdk(one.url, cluster.keys["alice"]) as client:  # a fresh session on the live replica
        assert text_of(await client.call_tool("calc__echo", {"text": "fresh"})) == "fresh"
        assert isinstance(client, Client) and isinstance(await client.list_tools(), types.ListToolsResult)


async def audited_texts(pg_url: str) -> set[str]:
    """The `text` argument of every tools/call event in the database."""
    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch("SELECT content FROM bastion_audit_events WHERE method = 'tools/call'")
    finally:
        await conn.close()
    texts = set()
    for row in rows:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            texts.add(json.loads(row["content"])["arguments"]["text"])
    return texts


def verify(cluster: Cluster, chains: set[str]) -> None:
    report = json.loads(cluster.cli("audit", "verify", "--json").stdout)
    assert report["ok"], report
    assert {c["replica"] for c in report["chains"]} == chains
