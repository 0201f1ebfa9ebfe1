"""Every way a call can be abandoned sends `notifications/cancelled` to the real upstream doing the work: a client's
own cancel, stdin EOF on `bastion stdio`, DELETE of an HTTP session, a 2026-07-28 client closing its response, a
legacy SSE client dropping its stream. The faulty upstream records what reaches it."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client

from bastion.config import parse_config
from bastion.core.gateway import Gateway
from bastion.testing import client_transport
from tests.reliability.conftest import (
    QUIET,
    StdioGateway,
    alive,
    call,
    cancelled_after_call,
    descendants,
    events,
    faulty_stdio,
    gateway_with,
    kill_all,
    wait_for,
    write_config,
)
from tests.server.conftest import (
    INIT_PARAMS,
    MODERN,
    body,
    initialize,
    modern_params,
    post_headers,
    request,
    running,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def called(record: Path, tool: str = "hang") -> bool:
    return any(e["event"] == "call" and e["tool"] == tool for e in events(record))


def served_gateway(record: Path) -> Gateway:
    return Gateway(parse_config({"servers": {"faulty": faulty_stdio(record)}, **QUIET}))


async def test_a_client_cancel_reaches_the_upstream(tmp_path):
    record = tmp_path / "events.jsonl"
    async with (
        gateway_with({"faulty": faulty_stdio(record)}) as gateway,
        Client(client_transport(gateway), mode="legacy") as client,
    ):
        async with anyio.create_task_group() as tg:
            tg.start_soon(client.call_tool, "faulty__hang", {})
            await wait_for(lambda: called(record))
            tg.cancel_scope.cancel()  # the SDK client sends notifications/cancelled
        assert (await cancelled_after_call(record, "hang"))["reason"] == "cancelled by client"
        await wait_for(lambda: not gateway.upstreams["faulty"].describe()["inFlight"])


async def test_stdin_eof_on_bastion_stdio_cancels_calls_in_flight_and_exits_cleanly(tmp_path):
    record = tmp_path / "events.jsonl"
    config = write_config(tmp_path, {"servers": {"faulty": faulty_stdio(record)}})
    gateway = await StdioGateway.start(config, tmp_path / "stdio.log")
    below: list[int] = []
    try:
        await gateway.initialize()
        await gateway.send(call(1, "faulty__hang"))
        await wait_for(lambda: called(record))
        below = descendants(gateway.process.pid)
        assert gateway.process.stdin is not None
        gateway.process.stdin.close()  # the client goes away
        with anyio.fail_after(30):
            assert await gateway.process.wait() == 0
        assert (await cancelled_after_call(record, "hang"))["reason"] == "cancelled by client"
        await wait_for(lambda: not any(alive(p) for p in below), 10)  # no orphans
    finally:
        await gateway.close()
        kill_all([p for p in below if alive(p)])


async def test_deleting_an_http_session_cancels_its_calls_upstream(tmp_path):
    record = tmp_path / "events.jsonl"
    async with running(gateway=served_gateway(record)) as app, httpx.AsyncClient(timeout=30) as http:
        sid = await initialize(http, app.mcp)
        pending = asyncio.ensure_future(
            http.post(
                app.mcp,
                content=body(call(7, "faulty__hang")),
                headers=post_headers(sid, "2025-11-25"),
            )
        )
        try:
            await wait_for(lambda: called(record))
            deleted = await http.delete(app.mcp, headers=post_headers(sid, "2025-11-25"))
            assert deleted.status_code == 204
            assert (await cancelled_after_call(record, "hang"))["reason"] == "cancelled by client"
            with anyio.fail_after(10):
                answer = await pending  # the POST ends too: its session is gone
            assert answer.status_code in (200, 404)
        finally:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending


async def test_a_modern_client_closing_its_response_cancels_the_call_upstream(tmp_path):
    record = tmp_path / "events.jsonl"
    async with running(gateway=served_gateway(record)) as app, httpx.AsyncClient(timeout=30) as http:
        headers = post_headers(version=MODERN, **{"mcp-method": "tools/call", "mcp-name": "faulty__hang"})
        message = request(1, "tools/call", modern_params({"name": "faulty__hang", "arguments": {}}))
        pending = asyncio.ensure_future(http.post(app.mcp, content=body(message), headers=headers))
        await wait_for(lambda: called(record))
        pending.cancel()  # closes the connection: 2026-07-28's cancellation
        with contextlib.suppress(asyncio.CancelledError):
            await pending
        assert (await cancelled_after_call(record, "hang"))["reason"] == "cancelled by client"
        await wait_for(lambda: not app.gateway.upstreams["faulty"].describe()["inFlight"])


async def test_a_legacy_sse_client_dropping_its_stream_cancels_its_calls_upstream(tmp_path):
    record = tmp_path / "events.jsonl"
    async with running(gateway=served_gateway(record)) as app, httpx.AsyncClient(timeout=30) as http:
        async with http.stream("GET", f"{app.url}/sse", headers={"accept": "text/event-stream"}) as stream:
            chunks = stream.aiter_text()
            text = ""
            with anyio.fail_after(10):
                while "event: endpoint" not in text or "\n\n" not in text.split("event: endpoint", 1)[1]:
                    text += await anext(chunks)
            endpoint = text.split("event: endpoint", 1)[1].split("data: ", 1)[1].split("\n", 1)[0].strip()
            url = f"{app.url}{endpoint}"
            headers = {"content-type": "application/json"}
            init = request(0, "initialize", INIT_PARAMS)
            assert (await http.post(url, content=body(init), headers=headers)).status_code == 202
            initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert (await http.post(url, content=body(initialized), headers=headers)).status_code == 202
            assert (
                await http.post(url, content=body(call(1, "faulty__hang")), headers=headers)
            ).status_code == 202
            await wait_for(lambda: called(record))
        assert (await cancelled_after_call(record, "hang"))["reason"] == "cancelled by client"
