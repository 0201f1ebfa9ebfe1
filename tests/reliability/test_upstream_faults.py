"""Upstream faults with real processes: killed, hung, frozen, flooding, dying mid-message, an HTTP server that
stops answering; the circuit breaker and the per-upstream concurrency cap. Each fault gets a clear JSON-RPC error
(never a hang), is visible in health and notices, and the gateway keeps serving everything else."""

from __future__ import annotations

import os
import signal
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client, MCPError, types

from bastion.config import parse_config
from bastion.core.gateway import Gateway
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.testing import client_transport
from bastion.upstream.connection import State
from tests.peers import calc_stdio
from tests.reliability.conftest import (
    QUIET,
    alive,
    cancelled_after_call,
    events,
    faulty_stdio,
    gateway_with,
    rss_kib,
    upstream_pid,
    wait_for,
)
from tests.server.conftest import running
from tests.transports.http_peers import calc_peer
from tests.transports.http_peers import running as peer_running

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


class Seen:
    """What the gateway told the client and its notice observers."""

    def __init__(self) -> None:
        self.list_changed = 0
        self.notices: list[Notice] = []

    async def on_message(self, message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.list_changed += 1

    async def on_notice(self, notice: Notice) -> None:
        self.notices.append(notice)

    def kinds(self, kind: NoticeKind, server: str) -> list[dict[str, Any]]:
        return [n.detail for n in self.notices if n.kind is kind and n.server == server]


def client(gateway: Gateway, seen: Seen) -> Client:
    gateway.notice_observers.append(seen)
    return Client(client_transport(gateway), mode="legacy", message_handler=seen.on_message)


async def tools(c: Client) -> set[str]:
    return {t.name for t in (await c.list_tools()).tools}


async def test_a_killed_stdio_upstream_fails_calls_fast_leaves_the_lists_and_is_restarted_each_time(tmp_path):
    seen = Seen()
    servers = {"faulty": faulty_stdio(tmp_path / "events.jsonl"), "calc": calc_stdio()}
    async with gateway_with(servers) as gateway, client(gateway, seen) as c:
        conn = gateway.upstreams["faulty"]
        for attempt in (1, 2):
            pid = upstream_pid(gateway, "faulty")
            assert pid is not None
            errors: list[Any] = []

            async def hang(errors: list[Any] = errors) -> None:
                with pytest.raises(MCPError) as info:
                    await c.call_tool("faulty__hang", {"seconds": 300})
                errors.append(info.value.error)

            changes = seen.list_changed
            with anyio.fail_after(15):  # the call in flight must fail fast, not wait for its 60 s timeout
                async with anyio.create_task_group() as tg:
                    tg.start_soon(hang)
                    await wait_for(lambda: conn.describe()["inFlight"])
                    os.kill(pid, signal.SIGKILL)
            assert errors[0].code == -31010 and errors[0].data["reason"] == "upstream_unavailable"
            assert errors[0].data["server"] == "faulty"
            await wait_for(
                lambda pid=pid: conn.state is State.READY and upstream_pid(gateway, "faulty") != pid
            )
            assert not alive(pid)  # reaped: no zombie left behind
            assert conn.restarts == attempt
            # Left, then rejoined: one notice, since the client has not listed in between (coalesced).
            await wait_for(lambda changes=changes: seen.list_changed >= changes + 1)
            assert "calc__add" in await tools(c) and "faulty__add" in await tools(c)
            assert (await c.call_tool("faulty__add", {"a": 2, "b": 2})).structured_content == {"result": 4}
        states = [d["state"] for d in seen.kinds(NoticeKind.UPSTREAM_STATE, "faulty")]
        assert states.count("down") == 2 and states.count("ready") >= 2


async def test_a_hung_call_times_out_clearly_and_the_upstream_receives_the_cancellation(tmp_path):
    record = tmp_path / "events.jsonl"
    servers = {"faulty": faulty_stdio(record, tool_timeouts={"hang": 0.5})}
    async with gateway_with(servers) as gateway, client(gateway, Seen()) as c:
        with pytest.raises(MCPError) as info:
            await c.call_tool("faulty__hang", {})
        assert info.value.error.code == -31011
        assert info.value.error.data == {"reason": "upstream_timeout", "server": "faulty"}
        cancelled = await cancelled_after_call(record, "hang")
        assert cancelled["reason"] == "timeout"
        await wait_for(lambda: any(e["event"] == "interrupted" for e in events(record)))
        assert (await c.call_tool("faulty__add", {"a": 1, "b": 1})).structured_content == {"result": 2}


async def test_a_call_to_an_upstream_that_stopped_reading_its_stdin_times_out_instead_of_hanging(tmp_path):
    servers = {"faulty": faulty_stdio(tool_timeouts={"echo": 1}, health={"interval_seconds": 0})}
    async with gateway_with(servers) as gateway, client(gateway, Seen()) as c:
        pid = upstream_pid(gateway, "faulty")
        assert pid is not None and "faulty__echo" in await tools(c)
        os.kill(pid, signal.SIGSTOP)  # its stdin pipe fills up: our write of the request blocks
        try:
            with anyio.fail_after(15), pytest.raises(MCPError) as info:
                await c.call_tool("faulty__echo", {"text": "x" * (4 * 1024 * 1024)})
            assert info.value.error.code == -31011
        finally:
            os.kill(pid, signal.SIGCONT)
        result = await c.call_tool("faulty__add", {"a": 1, "b": 1})
        assert result.structured_content == {"result": 2}


async def test_a_frozen_upstream_fails_its_health_checks_is_marked_down_and_restarted(tmp_path):
    health = {"interval_seconds": 0.2, "timeout_seconds": 0.3, "failures": 2}
    servers = {"faulty": faulty_stdio(timeout_seconds=1, health=health), "calc": calc_stdio()}
    async with gateway_with(servers) as gateway, client(gateway, Seen()) as c:
        conn = gateway.upstreams["faulty"]
        pid = upstream_pid(gateway, "faulty")
        with pytest.raises(MCPError) as info:
            await c.call_tool(
                "faulty__freeze", {"seconds": 600}
            )  # the process stays alive, answering nothing
        assert info.value.error.code in (-31010, -31011)
        await wait_for(lambda: conn.restarts >= 1 and conn.state is State.READY, 40)
        assert pid is not None and not alive(pid)
        assert upstream_pid(gateway, "faulty") != pid
        assert conn.describe()["healthChecks"] >= 2
        assert (await c.call_tool("faulty__add", {"a": 3, "b": 4})).structured_content == {"result": 7}
        assert (await c.call_tool("calc__add", {"a": 1, "b": 1})).structured_content == {"result": 2}


async def test_failed_calls_open_the_circuit_calls_fail_fast_and_a_probe_closes_it(tmp_path):
    seen = Seen()
    servers = {
        "faulty": faulty_stdio(
            tool_timeouts={"hang": 0.3},
            breaker={"failures": 2, "cooldown_seconds": 1.0},
            health={"interval_seconds": 0},
        ),
        "calc": calc_stdio(),
    }
    gateway = Gateway(parse_config({"servers": servers, **QUIET}))
    async with running(gateway=gateway) as app, client(gateway, seen) as c, httpx.AsyncClient() as http:
        conn = gateway.upstreams["faulty"]
        await wait_for(lambda: gateway.is_ready())
        for _ in range(2):
            with pytest.raises(MCPError) as info:
                await c.call_tool("faulty__hang", {})
            assert info.value.error.code == -31011
        with pytest.raises(MCPError) as info:
            await c.call_tool("faulty__add", {"a": 1, "b": 1})  # fails fast: nothing is sent upstream
        assert info.value.error.code == -31010
        assert info.value.error.data["circuit"] in ("open", "half_open")
        assert info.value.error.data["server"] == "faulty"
        ready = await http.get(f"{app.url}/readyz")
        circuit = ready.json()["upstreams"]["faulty"]["circuit"]
        if circuit["state"] == "open":  # unless the probe already ran
            assert (
                ready.status_code == 503 and circuit["trips"] == 1 and circuit["reason"] == "upstream_timeout"
            )
            assert "faulty__add" not in await tools(c) and "calc__add" in await tools(c)
        await wait_for(lambda: conn.available)  # the half-open probe (a ping) succeeded
        assert "faulty__add" in await tools(c)
        assert (await c.call_tool("faulty__add", {"a": 1, "b": 1})).structured_content == {"result": 2}
        assert (await http.get(f"{app.url}/readyz")).status_code == 200
        circuits = [d["circuit"] for d in seen.kinds(NoticeKind.UPSTREAM_STATE, "faulty")]
        assert circuits[-2:] == ["open", "closed"]
        assert seen.list_changed >= 2


async def test_calls_over_an_upstreams_max_concurrent_are_refused_at_once(tmp_path):
    servers = {"faulty": faulty_stdio(max_concurrent=2)}
    async with gateway_with(servers) as gateway, client(gateway, Seen()) as c:
        conn = gateway.upstreams["faulty"]
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(c.call_tool, "faulty__hang", {"seconds": 300})
            await wait_for(lambda: conn.describe()["inFlight"] == 2)
            with pytest.raises(MCPError) as info:
                await c.call_tool("faulty__add", {"a": 1, "b": 1})
            tg.cancel_scope.cancel()
        assert info.value.error.code == -31002
        assert info.value.error.data == {
            "reason": "rate_limited",
            "server": "faulty",
            "limit": 2,
            "retryAfter": 1,
        }
        await wait_for(lambda: not conn.describe()["inFlight"])
        assert conn.available  # refusals are not failures of the upstream
        assert (await c.call_tool("faulty__add", {"a": 1, "b": 1})).structured_content == {"result": 2}


async def test_an_upstream_writing_garbage_and_huge_lines_is_reported_and_memory_stays_bounded(tmp_path):
    seen = Seen()
    async with gateway_with({"faulty": faulty_stdio()}) as gateway, client(gateway, seen) as c:
        before = rss_kib(os.getpid())
        result = await c.call_tool("faulty__garbage", {"lines": 5000})
        assert not result.is_error
        result = await c.call_tool("faulty__huge_line", {"megabytes": 256})  # 16 times the line limit
        assert not result.is_error
        grown = rss_kib(os.getpid()) - before
        assert grown < 128 * 1024, f"RSS grew by {grown} KiB"
        assert (await c.call_tool("faulty__add", {"a": 5, "b": 5})).structured_content == {"result": 10}
        assert gateway.upstreams["faulty"].restarts == 0  # bad output is dropped, not fatal
        reports = seen.kinds(NoticeKind.PROTOCOL_ERROR, "faulty")
        assert reports and reports[0]["source"] == "upstream" and reports[0]["count"] >= 1


async def test_an_upstream_dying_mid_message_fails_the_call_fast_and_comes_back(tmp_path):
    async with gateway_with({"faulty": faulty_stdio()}) as gateway, client(gateway, Seen()) as c:
        with anyio.fail_after(15), pytest.raises(MCPError) as info:
            await c.call_tool("faulty__die_mid_message", {})
        assert info.value.error.code == -31010
        await wait_for(
            lambda: gateway.upstreams["faulty"].state is State.READY and gateway.upstreams["faulty"].restarts
        )
        assert (await c.call_tool("faulty__add", {"a": 1, "b": 2})).structured_content == {"result": 3}


async def test_an_http_upstream_that_stops_answering_is_marked_down_and_rejoins_when_it_answers_again():
    seen = Seen()
    async with peer_running(calc_peer("http")) as peer:
        assert peer.process is not None
        server = {
            "transport": "streamable-http",
            "url": peer.url,
            "protocol": "legacy",
            "timeout_seconds": 1,
            "connect_timeout_seconds": 2,
            "health": {"interval_seconds": 0.3, "timeout_seconds": 0.5, "failures": 2},
        }
        servers = {"calc": server, "local": calc_stdio("local")}
        try:
            async with gateway_with(servers) as gateway, client(gateway, seen) as c:
                conn = gateway.upstreams["calc"]
                assert (await c.call_tool("calc__add", {"a": 1, "b": 1})).structured_content == {"result": 2}
                os.kill(peer.process.pid, signal.SIGSTOP)  # alive, connections accepted, nothing answered
                with anyio.fail_after(10), pytest.raises(MCPError) as info:
                    await c.call_tool("calc__add", {"a": 1, "b": 1})
                assert info.value.error.code in (-31010, -31011)
                await wait_for(lambda: conn.state is not State.READY, 30)
                names = await tools(c)
                assert "local__add" in names and "calc__add" not in names
                with anyio.fail_after(5), pytest.raises(MCPError) as info:
                    await c.call_tool("calc__add", {"a": 1, "b": 1})
                assert info.value.error.code == -31010 and info.value.error.data["server"] == "calc"
                os.kill(peer.process.pid, signal.SIGCONT)
                await wait_for(lambda: conn.state is State.READY, 60)
                assert "calc__add" in await tools(c)
                assert (await c.call_tool("calc__add", {"a": 2, "b": 2})).structured_content == {"result": 4}
                states = [d["state"] for d in seen.kinds(NoticeKind.UPSTREAM_STATE, "calc")]
                assert "down" in states and states[-1] == "ready"
                assert seen.list_changed >= 2
        finally:
            os.kill(peer.process.pid, signal.SIGCONT)
