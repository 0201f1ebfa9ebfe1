"""Upstream isolation with real processes: malicious stdio and HTTP upstreams, two and three principals at once.

Each principal's client answers every server->client request as itself and records everything it is shown; the
upstreams send sampling, elicitation, roots, logs and progress during calls, and stray requests tied to no call.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError

from bastion.auth.principal import Principal
from bastion.config import parse_config
from bastion.core.contribution import Contribution
from bastion.core.gateway import Gateway
from bastion.pipeline.stages.listing import ToolScreenStage
from bastion.testing import client_transport
from tests.peers import PYTHON, ROOT, free_port
from tests.transports.http_peers import Peer, running
from tests.upstream.relay_harness import Seen, principal_client, probe, storm

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

THREE = ["alice", "bob", "carol"]


def probe_stdio(**extra: Any) -> dict[str, Any]:
    return {
        "transport": "stdio",
        "command": PYTHON,
        "args": [str(ROOT / "tests/servers/relay_probe.py")],
        **extra,
    }


@contextlib.asynccontextmanager
async def gateway_with(server: dict[str, Any]) -> AsyncIterator[Gateway]:
    gateway = Gateway(parse_config({"servers": {"probe": server}}))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.aclose()


@contextlib.asynccontextmanager
async def probe_http() -> AsyncIterator[str]:
    port = free_port()
    async with running(
        Peer([PYTHON, str(ROOT / "tests/servers/relay_probe_http.py"), str(port)], port, "/mcp")
    ):
        yield f"http://127.0.0.1:{port}/mcp"


def assert_isolated(seen: dict[str, Seen], calls: int) -> None:
    for principal, record in seen.items():
        assert len(record.reports) == calls
        assert record.foreign(list(seen)) == [], principal


async def test_three_principals_make_1020_calls_to_a_malicious_stdio_upstream_with_zero_cross_delivery() -> (
    None
):
    async with gateway_with(probe_stdio()) as gateway:
        seen = await storm(gateway, THREE, 340)
        assert_isolated(seen, 340)
        assert all(s.answered() == 340 for s in seen.values())  # each call's requests reached its own caller
        assert gateway.pool.count("probe") == 3  # one process per principal


async def test_a_shared_stdio_upstream_gets_every_request_refused_and_progress_reaches_only_its_owner() -> (
    None
):
    async with gateway_with(probe_stdio(isolation="shared")) as gateway:
        seen = await storm(gateway, ["alice", "bob"], 40)
        assert_isolated(seen, 40)
        for record in seen.values():
            assert record.answered() == 0  # stdio relates nothing: nothing can be tied, so nothing is guessed
            assert {r["sampling"]["error"]["code"] for r in record.reports} == {-32601}
            assert sorted(record.texts) == sorted(r["tag"] for r in record.reports)  # progress, own only
        assert gateway.pool.count("probe") == 0


async def test_three_principals_over_a_malicious_http_upstream_get_an_upstream_session_each() -> None:
    async with (
        probe_http() as url,
        gateway_with({"transport": "streamable-http", "url": url, "protocol": "legacy"}) as gateway,
    ):
        seen = await storm(gateway, THREE, 60)
        assert_isolated(seen, 60)
        assert all(s.answered() == 60 for s in seen.values())
        assert gateway.pool.count("probe") == 0  # every upstream session ended with its client's session


async def test_a_shared_http_upstream_relays_only_what_its_streams_tie_to_a_call() -> None:
    config = {"transport": "streamable-http", "url": "", "protocol": "legacy", "isolation": "shared"}
    async with probe_http() as url, gateway_with({**config, "url": url}) as gateway:
        seen = await storm(gateway, ["alice", "bob"], 60)
        assert_isolated(seen, 60)
        for principal, record in seen.items():
            for report in record.reports:
                assert report["sampling"]["result"]["content"]["text"] == f"{principal}:{report['tag']}"
                assert report["elicitation"]["result"]["content"] == {"who": principal}
                assert "error" in report["roots"]  # sent on the standalone stream: tied to no call, refused


async def test_a_principal_beyond_max_processes_gets_a_clear_error_and_the_first_keeps_its_process() -> None:
    async with gateway_with(probe_stdio(max_processes=1)) as gateway:
        alice, bob = Seen("alice"), Seen("bob")
        async with principal_client(gateway, alice) as first, principal_client(gateway, bob) as second:
            await probe(first, alice, "alice-0")
            with pytest.raises(MCPError) as info:
                await second.call_tool("probe__probe", {"tag": "bob-0"})
            assert info.value.error.code == -31002
            assert info.value.error.data["limit"] == 1
            await probe(first, alice, "alice-1")
            assert alice.answered() == 2 and bob.texts == []


async def test_one_principal_with_many_sessions_cannot_take_a_servers_whole_connection_budget() -> None:
    server = probe_stdio(isolation="session", max_processes=3, max_processes_per_principal=1)
    async with gateway_with(server) as gateway:
        alice, alice_again, bob = Seen("alice"), Seen("alice"), Seen("bob")
        async with (
            principal_client(gateway, alice) as first,
            principal_client(gateway, alice_again) as second,
            principal_client(gateway, bob) as third,
        ):
            await probe(first, alice, "alice-0")
            with pytest.raises(MCPError) as info:
                await second.call_tool("probe__probe", {"tag": "alice-1"})
            assert info.value.error.code == -31002 and info.value.error.data["limit"] == 1
            await probe(third, bob, "bob-0")  # the server's budget is still there for others
            assert alice.answered() == 1 and bob.answered() == 1 and alice_again.texts == []


async def test_idle_principal_processes_are_reaped_and_started_again_on_next_use() -> None:
    async with gateway_with(probe_stdio(idle_seconds=0.2)) as gateway:
        alice = Seen("alice")
        async with principal_client(gateway, alice) as client:
            await probe(client, alice, "alice-0")
            assert gateway.pool.count("probe") == 1
            with anyio.fail_after(10):
                while gateway.pool.count("probe"):
                    await anyio.sleep(0.05)
            await probe(client, alice, "alice-1")
            assert gateway.pool.count("probe") == 1 and alice.answered() == 2


async def test_a_tool_the_pins_check_holds_on_a_principals_own_process_cannot_be_called_there() -> None:
    async with gateway_with(probe_stdio()) as gateway:
        screened: list[int] = []

        async def screen(server: str, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
            screened.append(len(tools))
            return tools if len(screened) == 1 else []  # the catalogue's list passes, the scoped one is held

        gateway.use(Contribution(listing_stages=(ToolScreenStage(screen),)))
        async with Client(
            client_transport(gateway, principal=Principal(name="alice", method="api_key")), mode="legacy"
        ) as client:
            assert [t.name for t in (await client.list_tools()).tools] == ["probe__probe"]
            with pytest.raises(Exception, match="Unknown tool"):
                await client.call_tool("probe__probe", {"tag": "alice-0"})
        assert len(screened) == 2


async def test_logging_set_level_is_per_session_filtered_by_bastion_and_observed() -> None:
    exchanges: list[Any] = []

    class Observer:
        async def on_exchange(self, exchange: Any) -> None:
            exchanges.append(exchange)

    config = parse_config({"servers": {"probe": probe_stdio(isolation="shared")}})
    gateway = Gateway(config, observers=[Observer()])
    await gateway.start()
    try:
        quiet, chatty = Seen("alice"), Seen("bob")
        async with (
            principal_client(gateway, quiet, level="error") as alice,
            principal_client(gateway, chatty, level="debug") as bob,
        ):
            for i in range(3):
                await probe(alice, quiet, f"alice-{i}")
                await probe(bob, chatty, f"bob-{i}")
        assert not any(
            t.startswith("log ") for t in quiet.texts
        )  # bob's debug level changed nothing for alice
        assert [t for t in chatty.texts if t.startswith("log ")] == []  # shared stdio: logs tie to no call
        levels = [
            (e.session.principal.name, e.params["level"]) for e in exchanges if e.method == "logging/setLevel"
        ]
        assert sorted(levels) == [("alice", "error"), ("bob", "debug")]
    finally:
        await gateway.aclose()


async def test_log_levels_filter_what_a_principal_scoped_process_sends_to_its_own_sessions() -> None:
    async with gateway_with(probe_stdio()) as gateway:
        quiet, chatty = Seen("alice"), Seen("bob")
        async with (
            principal_client(gateway, quiet, level="error") as alice,
            principal_client(gateway, chatty, level="info") as bob,
        ):
            await probe(alice, quiet, "alice-0")
            await probe(bob, chatty, "bob-0")
        assert "log alice-0" not in quiet.texts and "log bob-0" in chatty.texts
