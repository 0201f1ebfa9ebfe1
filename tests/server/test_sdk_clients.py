"""The official SDK clients (mcp 2.3.0) against `bastion serve` in a child process, real upstreams behind it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import anyio
import httpx
import orjson
import pytest
import yaml
from mcp import Client, ClientSession, types
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.peers import EVERYTHING_JS, LOOPBACK_CJS, NODE, ROOT, calc_stdio, free_port, time_stdio
from tests.server.conftest import SseReader, bastion_serve, body, initialize, post_headers, request

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def _config(**extra):
    calc = {**calc_stdio(), "env": {"CALC_API_TOKEN": "s3cr3t-value"}}
    return {
        "servers": {"calc": calc, "time": time_stdio()},
        "guardrails": {"enabled": False},
        **extra,
    }


def _text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_the_sdk_client_works_in_every_mode_and_both_http_transports(tmp_path):
    async with bastion_serve(_config(), tmp_path) as served:
        mcp = f"{served.url}/mcp"
        for mode in ("auto", "legacy", "2026-07-28"):
            async with Client(mcp, mode=mode) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert {"calc__add", "time__get_current_time"} <= names, mode
                now = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
                assert not now.is_error and "UTC" in _text(now), mode
                total = await client.call_tool("calc__add", {"a": 20, "b": 22})
                assert total.structured_content == {"result": 42}, mode
        async with streamable_http_client(mcp) as (read, write), ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.protocol_version == "2025-11-25" and init.server_info.name == "bastion"
            assert _text(await session.call_tool("calc__echo", {"text": "low-level"})) == "low-level"
        async with sse_client(f"{served.url}/sse") as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            assert _text(await session.call_tool("calc__echo", {"text": "over sse"})) == "over sse"


async def test_progress_reaches_the_sdk_client_over_streamable_http(tmp_path):
    async with bastion_serve(_config(), tmp_path) as served:
        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        for mode in ("legacy", "2026-07-28"):
            seen.clear()
            async with Client(f"{served.url}/mcp", mode=mode) as client:
                result = await client.call_tool("calc__slow_count", {"n": 3}, progress_callback=on_progress)
                assert _text(result) == "counted 3" and seen == [1, 2, 3], mode


async def test_readyz_reports_upstreams_without_secrets_and_healthz_is_alive(tmp_path):
    calc = {**calc_stdio(), "env": {"CALC_API_TOKEN": "s3cr3t-value"}, "connect_timeout_seconds": 15}
    config = _config(servers={"calc": calc})  # start-up waits for the slowest connect timeout
    config["servers"]["broken"] = {
        "transport": "stdio",
        "command": str(tmp_path / "missing"),
        "connect_timeout_seconds": 1,
    }
    async with bastion_serve(config, tmp_path) as served, httpx.AsyncClient() as http:
        assert (await http.get(f"{served.url}/healthz")).json() == {"status": "ok"}
        ready = await http.get(f"{served.url}/readyz")
        assert ready.status_code == 503
        health = ready.json()
        assert health["upstreams"]["calc"]["state"] == "ready"
        assert health["upstreams"]["broken"]["state"] != "ready"
        assert "s3cr3t" not in ready.text


@contextlib.contextmanager
def everything_http() -> Iterator[str]:
    """server-everything's Streamable HTTP server on a free loopback port (as `make run` starts it)."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "NODE_OPTIONS": f"--require {LOOPBACK_CJS}"}
    process = subprocess.Popen(
        [NODE, str(EVERYTHING_JS), "streamableHttp"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # polling a child process: nothing else tells us it listens
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("server-everything did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)


async def test_the_example_config_serves_mcp_and_sse(tmp_path):
    example = yaml.safe_load((ROOT / "examples/bastion.yaml").read_text())
    for server in example["servers"].values():
        if server["transport"] == "stdio":
            if (
                "/" in server["command"]
            ):  # repo-relative (not resolved: .venv/bin/python must stay the venv's)
                server["command"] = str(ROOT / server["command"])
            server["args"] = [str(ROOT / a) if a.startswith("tests/") else a for a in server["args"]]
    example["guardrails"] = {"enabled": False}
    with everything_http() as remote:
        example["servers"]["remote"]["url"] = remote
        async with bastion_serve(example, tmp_path) as served:
            async with Client(f"{served.url}/mcp") as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert {"time__get_current_time", "everything__echo", "remote__echo"} <= names
                echoed = await client.call_tool("remote__echo", {"message": "through two hops"})
                assert "through two hops" in _text(echoed)
            async with Client(sse_client(f"{served.url}/sse"), mode="legacy") as client:
                now = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
                assert not now.is_error
                assert "hi" in _text(await client.call_tool("everything__echo", {"message": "hi"}))


async def test_sigterm_drains_a_call_in_flight_and_ends_idle_streams(tmp_path):
    async with bastion_serve(_config(), tmp_path) as served, httpx.AsyncClient(timeout=30) as http:
        mcp = f"{served.url}/mcp"
        sid = await initialize(http, mcp)
        slow = body(request(2, "tools/call", {"name": "calc__sleep", "arguments": {"seconds": 2}}))
        answers: list[dict] = []
        async with http.stream(
            "GET", mcp, headers={"mcp-session-id": sid, "accept": "text/event-stream"}
        ) as stream:
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    answers.append((await http.post(mcp, content=slow, headers=post_headers(sid))).json())

                tg.start_soon(call)
                with anyio.fail_after(20):  # the call has reached the upstream: /readyz counts it
                    while not (await http.get(f"{served.url}/readyz")).json()["upstreams"]["calc"][
                        "inFlight"
                    ]:
                        await anyio.sleep(0.05)
                served.process.send_signal(signal.SIGTERM)
                with anyio.fail_after(20):
                    async for _ in stream.aiter_bytes():
                        pass  # the idle GET stream ends at once when draining starts
        assert answers and answers[0]["result"]["content"][0]["text"] == "slept"
        with anyio.fail_after(20):
            while served.process.poll() is None:
                await anyio.sleep(0.1)
        assert served.process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
        stderr = served.stderr()
        assert "timeout graceful shutdown exceeded" not in stderr
        refused = [line for line in stderr.splitlines() if "Traceback" in line]
        assert refused == []


async def test_a_modern_post_and_a_get_stream_round_trip_through_the_child(tmp_path):
    async with bastion_serve(_config(), tmp_path) as served, httpx.AsyncClient(timeout=30) as http:
        mcp = f"{served.url}/mcp"
        sid = await initialize(http, mcp)
        async with http.stream(
            "GET", mcp, headers={"mcp-session-id": sid, "accept": "text/event-stream"}
        ) as stream:
            reader = SseReader(stream)
            grow = body(request(3, "tools/call", {"name": "calc__grow", "arguments": {}}))
            assert (await http.post(mcp, content=grow, headers=post_headers(sid))).status_code == 200
            with anyio.fail_after(20):
                (event,) = await reader.take(1)
            assert orjson.loads(event["data"])["method"] == "notifications/tools/list_changed"
