"""The 2024-11-05 HTTP+SSE transport on the wire: endpoint event, 202 POSTs, answers on the stream."""

from __future__ import annotations

import anyio
import httpx
import orjson
import pytest

from tests.server.conftest import INIT_PARAMS, SseReader, body, post_headers, request, running

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_the_stream_names_the_post_endpoint_first_and_carries_every_answer():
    async with running() as app, httpx.AsyncClient(timeout=10) as http:
        async with http.stream("GET", f"{app.url}/sse") as stream:
            assert stream.headers["content-type"] == "text/event-stream"
            assert stream.headers["x-accel-buffering"] == "no"
            reader = SseReader(stream)
            with anyio.fail_after(10):
                (endpoint,) = await reader.take(1)
            assert endpoint["event"] == "endpoint" and endpoint["data"].startswith("/messages?sessionId=")
            post = f"{app.url}{endpoint['data']}"
            accepted = await http.post(
                post, content=body(request(1, "initialize", INIT_PARAMS)), headers=post_headers()
            )
            assert accepted.status_code == 202 and accepted.content == b""
            with anyio.fail_after(10):
                (answer,) = await reader.take(1)
            assert answer["event"] == "message"
            assert orjson.loads(answer["data"])["result"]["serverInfo"]["name"] == "bastion"
            (session,) = app.gateway.sessions.values()
            assert session.info.transport == "sse"
        await app.recorder.wait_for(lambda: not app.gateway.sessions)  # the session ends with its stream


async def test_unknown_sessions_batches_and_wrong_methods_are_refused():
    async with running() as app, httpx.AsyncClient(timeout=10) as http:
        ping = body(request(1, "ping"))
        assert (await http.post(f"{app.url}/messages?sessionId=nope", content=ping)).status_code == 404
        assert (await http.post(f"{app.url}/messages", content=ping)).status_code == 404
        assert (await http.get(f"{app.url}/messages")).status_code == 405
        assert (await http.post(f"{app.url}/sse")).status_code == 405
        async with http.stream("GET", f"{app.url}/sse") as stream:
            reader = SseReader(stream)  # kept: a dropped body iterator closes the stream
            (endpoint,) = await reader.take(1)
            post = f"{app.url}{endpoint['data']}"
            batch = await http.post(post, content=orjson.dumps([request(1, "ping")]), headers=post_headers())
            assert batch.status_code == 400 and batch.json()["error"]["code"] == -32600
            broken = await http.post(post, content=b"{", headers=post_headers())
            assert broken.status_code == 400 and broken.json()["error"]["code"] == -32700
