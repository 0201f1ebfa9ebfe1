"""Legacy HTTP+SSE upstreams: the official SDK's own SSE server in a subprocess, plus wire shapes it never sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bastion.errors import UpstreamUnavailable
from bastion.protocol import jsonrpc
from bastion.transports.sse_client import SseClientTransport
from bastion.upstream.connection import State
from tests.peers import free_port
from tests.transports.conftest import (
    calc_peer,
    gateway_for,
    http_server_config,
    running,
    sdk_client,
    serve_app,
    text,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.mark.parametrize("protocol", ["auto", "legacy"])
async def test_an_sdk_sse_server_is_used_through_the_gateway_in_the_handshake_era(protocol):
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with running(calc_peer("sse")) as peer:
        config = http_server_config(peer.url, "sse", protocol=protocol, headers={"X-Api-Key": "k-9"})
        async with gateway_for({"calc": config}) as gateway, sdk_client(gateway, mode="legacy") as client:
            conn = gateway.upstreams["calc"]
            assert conn.state is State.READY and not conn.modern
            assert (await client.call_tool("calc__add", {"a": 40, "b": 2})).structured_content == {
                "result": 42
            }
            headers = await client.call_tool("calc__seen_headers", {}, meta={"traceparent": TRACEPARENT})
            assert headers.structured_content == {"x-api-key": "k-9", "traceparent": TRACEPARENT}
            result = await client.call_tool("calc__slow_count", {"n": 2}, progress_callback=on_progress)
            assert text(result) == "counted 2"
            assert seen == [1, 2]
            assert (await client.read_resource("calc://square/3")).contents[0].text == "9"


async def test_a_modern_only_config_refuses_an_sse_upstream():
    async with running(calc_peer("sse")) as peer:
        async with gateway_for(
            {"calc": http_server_config(peer.url, "sse", protocol="modern", connect_timeout_seconds=3)}
        ) as gateway:
            conn = gateway.upstreams["calc"]
            assert conn.state is not State.READY
            assert "2026-07-28" in conn.last_error


def _sse_app(endpoint: bytes, message_status: int = 202) -> Starlette:
    async def stream(request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield b"event: endpoint\ndata: " + endpoint + b"\n\n"
            await asyncio.Event().wait()  # hold the stream open until the client leaves

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(
        routes=[
            Route("/sse", stream),
            Route("/gone", lambda r: Response(status_code=410)),
            Route("/messages", lambda r: Response("nope", message_status), methods=["POST"]),
        ]
    )


async def _open(url: str) -> SseClientTransport:
    transport = SseClientTransport(url, {}, timeout=5, name="fake")
    await transport.start()
    return transport


async def test_an_endpoint_on_another_origin_is_refused():
    async with serve_app(_sse_app(b"http://evil.example/messages")) as url:
        with anyio.fail_after(10), pytest.raises(UpstreamUnavailable) as info:
            await _open(url + "/sse")
        assert "another origin" in info.value.message


@pytest.mark.parametrize("path", ["/gone", "/missing"])
async def test_an_sse_url_that_does_not_answer_200_fails_start(path):
    async with serve_app(_sse_app(b"/messages")) as url:
        with anyio.fail_after(10), pytest.raises(UpstreamUnavailable):
            await _open(url + path)


async def test_an_unreachable_sse_url_fails_start():
    with anyio.fail_after(10), pytest.raises(UpstreamUnavailable):
        await _open(f"http://127.0.0.1:{free_port()}/sse")


async def test_a_relative_endpoint_is_resolved_and_a_refused_post_answers_the_request_with_an_error():
    async with serve_app(_sse_app(b"messages?sessionId=abc", message_status=500)) as url:
        transport = await _open(url + "/sse")
        try:
            assert transport.endpoint == url + "/messages?sessionId=abc"
            await transport.send(jsonrpc.request(9, "tools/list"))
            with anyio.fail_after(10):
                incoming = await anext(transport.receive())
            assert incoming.message["id"] == 9
            assert incoming.message["error"]["data"]["httpStatus"] == 500
        finally:
            await transport.aclose()


async def test_the_era_probe_is_refused_locally_so_the_handshake_follows_at_once():
    async with serve_app(_sse_app(b"/messages")) as url:
        transport = await _open(url + "/sse")
        try:
            await transport.send(jsonrpc.request(1, "server/discover", {}))
            with anyio.fail_after(10):
                incoming: Any = await anext(transport.receive())
            assert incoming.message["error"]["code"] == -32601
        finally:
            await transport.aclose()
