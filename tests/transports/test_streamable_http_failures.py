"""Streamable HTTP failure paths: every request gets an answer, and a gone upstream ends the transport.

Real sockets throughout: the SDK calc server where it can produce the case, else a small Starlette app served by
uvicorn in this process for wire shapes no well-behaved peer sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bastion.protocol import jsonrpc
from bastion.transports.base import Incoming, TransportClosed
from bastion.transports.streamable_http_client import StreamableHttpClientTransport
from tests.peers import free_port
from tests.transports.conftest import Peer, serve_app

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

INIT = jsonrpc.request(
    1,
    "initialize",
    {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
)


async def _session(request: Request) -> Response:
    body = await request.json()
    if body.get("method") == "initialize":
        return JSONResponse(
            {"jsonrpc": "2.0", "id": body["id"], "result": {}}, headers={"mcp-session-id": "s-1"}
        )
    return Response(status_code=404)  # the session is gone at once


async def _short_stream(request: Request) -> Response:
    async def events() -> AsyncIterator[bytes]:
        yield b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{}}\n\n'

    return StreamingResponse(events(), media_type="text/event-stream")


async def _poll_then_answer(request: Request) -> Response:
    if request.method == "GET":
        assert request.headers["last-event-id"] == "e1"
        answer = f'{{"jsonrpc":"2.0","id":{request.headers["x-request-id"]},"result":{{"resumed":true}}}}'
        return Response(f"id: e2\ndata: {answer}\n\n", media_type="text/event-stream")
    return Response("id: e1\nretry: 10\ndata:\n\n", media_type="text/event-stream")  # prime, then close


APP = Starlette(
    routes=[
        Route("/accepted", lambda r: Response(status_code=202), methods=["POST"]),
        Route("/html", lambda r: Response("<h1>oops</h1>", 500, media_type="text/html"), methods=["POST"]),
        Route("/garbage", lambda r: Response(b"not json", media_type="application/json"), methods=["POST"]),
        Route("/huge", lambda r: JSONResponse({"pad": "x" * 5000}), methods=["POST"]),
        Route("/text", lambda r: Response("hello", media_type="text/plain"), methods=["POST"]),
        Route("/session", _session, methods=["POST", "DELETE"]),
        Route("/short", _short_stream, methods=["POST"]),
        Route("/poll", _poll_then_answer, methods=["POST", "GET"]),
    ]
)


@pytest.fixture
async def fake() -> AsyncIterator[str]:
    async with serve_app(APP) as url:
        yield url


async def _next(transport: Any) -> Incoming:
    with anyio.fail_after(10):
        return await anext(transport.receive())


async def _open(url: str, **kwargs: Any) -> StreamableHttpClientTransport:
    transport = StreamableHttpClientTransport(
        url, kwargs.pop("headers", {}), timeout=5, name="fake", **kwargs
    )
    await transport.start()
    return transport


@pytest.mark.parametrize(
    ("path", "status"),
    [("/accepted", 202), ("/html", 500), ("/nowhere", 404), ("/text", None), ("/garbage", None)],
)
async def test_a_request_the_server_cannot_answer_properly_gets_a_jsonrpc_error(fake, path, status):
    transport = await _open(fake + path)
    try:
        await transport.send(jsonrpc.request(7, "tools/list"))
        incoming = await _next(transport)
        assert incoming.related == 7
        assert incoming.message["id"] == 7
        assert incoming.message["error"]["code"] == -31010
        assert incoming.message["error"]["data"].get("httpStatus") == status
    finally:
        await transport.aclose()


async def test_a_response_over_the_size_limit_is_refused_as_an_error(fake):
    transport = await _open(fake + "/huge", max_message_bytes=1000)
    try:
        await transport.send(jsonrpc.request(3, "tools/list"))
        incoming = await _next(transport)
        assert incoming.message["error"]["data"]["reason"] == "too_large"
    finally:
        await transport.aclose()


async def test_a_stream_that_ends_without_an_answer_and_without_an_event_id_fails_the_request(fake):
    transport = await _open(fake + "/short")
    try:
        await transport.send(jsonrpc.request(4, "tools/call", {"name": "x"}))
        note = await _next(transport)
        assert note.message["method"] == "notifications/message" and note.related == 4
        failed = await _next(transport)
        assert failed.message["id"] == 4 and failed.message["error"]["code"] == -31010
    finally:
        await transport.aclose()


async def test_a_primed_stream_closed_by_the_server_is_resumed_after_its_retry_delay(fake):
    transport = await _open(fake + "/poll", headers={"x-request-id": "5"})
    try:
        await transport.send(jsonrpc.request(5, "tools/call", {"name": "x"}))
        incoming = await _next(transport)
        assert incoming.message == {"jsonrpc": "2.0", "id": 5, "result": {"resumed": True}}
        assert incoming.related == 5
    finally:
        await transport.aclose()


async def test_a_404_for_an_established_session_ends_the_transport(fake):
    transport = await _open(fake + "/session")
    try:
        await transport.send(INIT)
        assert (await _next(transport)).message["result"] == {}
        assert transport.session_id == "s-1"
        await transport.send(jsonrpc.request(2, "tools/list"))
        failed = await _next(transport)
        assert failed.message["id"] == 2 and failed.message["error"]["code"] == -31010
        with anyio.fail_after(10):
            assert [i async for i in transport.receive()] == []  # receive() finishes
        with pytest.raises(TransportClosed):
            await transport.send(jsonrpc.request(3, "tools/list"))
    finally:
        await transport.aclose()


async def test_an_unreachable_upstream_answers_the_request_with_an_error_and_ends_the_transport():
    transport = await _open(f"http://127.0.0.1:{free_port()}/mcp")
    try:
        await transport.send(jsonrpc.request(1, "server/discover"))
        failed = await _next(transport)
        assert failed.message["error"]["data"] == {"reason": "upstream_unavailable", "server": "fake"}
        with anyio.fail_after(10):
            assert [i async for i in transport.receive()] == []
        with pytest.raises(TransportClosed):
            await transport.send(jsonrpc.notification("notifications/initialized"))
    finally:
        await transport.aclose()


async def test_aclose_ends_the_upstream_session_with_delete(calc_http: Peer):
    transport = StreamableHttpClientTransport(calc_http.url, timeout=5, name="calc")
    await transport.start()
    await transport.send(INIT)
    assert "result" in (await _next(transport)).message
    session = transport.session_id
    await transport.aclose()
    async with httpx.AsyncClient() as http:
        gone = await http.post(
            calc_http.url,
            json=jsonrpc.request(2, "tools/list"),
            headers={"mcp-session-id": session, "accept": "application/json, text/event-stream"},
        )
    assert gone.status_code == 404
