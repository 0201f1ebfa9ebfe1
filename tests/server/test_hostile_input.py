"""Hostile and broken input on a real socket: each is refused with the right status and code, and logged as a
notice, and the server goes on serving everyone else."""

from __future__ import annotations

import anyio
import httpx
import orjson
import pytest

from bastion.pipeline.notice import NoticeKind
from bastion.server import wire
from tests.server.conftest import INIT_PARAMS, body, initialize, post_headers, request, running

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

LIMITS = {"limits": {"max_body_bytes": 64 * 1024, "max_depth": 16}}


def _deep(levels: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":' + b"[" * levels + b"]" * levels + b"}}"


HOSTILE = [
    ("malformed JSON", b'{"jsonrpc": "2.0", "id": 1, "method": ', 400, -32700),
    ("invalid UTF-8", b'{"jsonrpc":"2.0","id":1,"method":"p\xff\xfeing"}', 400, -32700),
    ("not an object", b'"hello"', 400, -32600),
    ("method of the wrong type", b'{"jsonrpc":"2.0","id":1,"method":5}', 400, -32600),
    ("params of the wrong type", b'{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}', 400, -32600),
    ("wrong jsonrpc version", b'{"jsonrpc":"1.0","id":1,"method":"ping"}', 400, -32600),
    ("id of the wrong type", b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', 400, -32600),
    ("boolean id", b'{"jsonrpc":"2.0","id":true,"method":"ping"}', 400, -32600),
    ("huge integer id", b'{"jsonrpc":"2.0","id":' + b"9" * 40 + b',"method":"ping"}', 400, None),
    ("huge string id", orjson.dumps(request("x" * 5000, "ping")), 400, -32600),
    ("nesting beyond max_depth", _deep(40), 413, -32600),
    ("empty body", b"", 400, -32700),
]


@pytest.mark.parametrize(("case", "payload", "status", "code"), HOSTILE, ids=[c[0] for c in HOSTILE])
async def test_hostile_bodies_are_refused_and_the_server_keeps_serving(case, payload, status, code):
    async with running(LIMITS) as app, httpx.AsyncClient() as http:
        sid = await initialize(http, app.mcp)
        for session in (None, sid):
            response = await http.post(app.mcp, content=payload, headers=post_headers(session))
            assert response.status_code == status, (case, response.text)
            error = response.json()["error"]
            assert code is None or error["code"] == code
            assert "Traceback" not in response.text
        await app.recorder.wait_for(lambda: len(app.recorder.kinds(NoticeKind.PROTOCOL_ERROR)) >= 2)
        ok = await http.post(app.mcp, content=body(request(9, "ping")), headers=post_headers(sid))
        assert ok.json() == {"jsonrpc": "2.0", "id": 9, "result": {}}


async def test_an_oversize_body_with_content_length_is_refused_before_it_is_read():
    async with running(LIMITS) as app, httpx.AsyncClient() as http:
        huge = body(request(1, "initialize", {**INIT_PARAMS, "pad": "x" * (128 * 1024)}))
        response = await http.post(app.mcp, content=huge, headers=post_headers())
        assert response.status_code == 413 and response.json()["error"]["code"] == -32600
        assert app.gateway.sessions == {}


async def test_an_oversize_chunked_body_is_refused_while_streaming():
    async with running(LIMITS) as app, httpx.AsyncClient() as http:
        sent = 0

        async def chunks():
            nonlocal sent
            yield b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"'
            for _ in range(64):  # 4 MiB offered; the server stops after 64 KiB
                sent += 1
                yield b"x" * 65536
            yield b'"}}'

        try:
            response = await http.post(app.mcp, content=chunks(), headers=post_headers())
        except httpx.HTTPError:
            response = None  # the server may close before the client has finished sending
        if response is not None:
            assert response.status_code == 413 and response.json()["error"]["code"] == -32600
        await app.recorder.wait_for(
            lambda: any(n.detail.get("reason") == "too_large" for n in app.recorder.notices)
        )
        sid = await initialize(http, app.mcp)
        assert sid


async def test_bad_host_is_421_bad_origin_is_403_and_loopback_origins_pass():
    async with running() as app, httpx.AsyncClient() as http:
        init = body(request(1, "initialize", INIT_PARAMS))
        rebound = await http.post(
            app.mcp, content=init, headers={**post_headers(), "host": "evil.example:80"}
        )
        assert rebound.status_code == 421
        foreign = await http.post(
            app.mcp, content=init, headers={**post_headers(), "origin": "http://evil.example"}
        )
        assert foreign.status_code == 403
        opaque = await http.post(app.mcp, content=init, headers={**post_headers(), "origin": "null"})
        assert opaque.status_code == 403
        for origin in ("http://localhost:6274", "http://127.0.0.1", "http://[::1]:9"):
            ok = await http.post(app.mcp, content=init, headers={**post_headers(), "origin": origin})
            assert ok.status_code == 200, origin
        assert (await http.get(f"{app.url}/healthz", headers={"host": "10.0.0.7:8765"})).status_code == 200
        reasons = {n.detail["status"] for n in app.recorder.kinds(NoticeKind.PROTOCOL_ERROR)}
        assert {421, 403} <= reasons


async def test_configured_hosts_and_origins_are_accepted_with_cors_for_cross_origin_browsers():
    listen = {
        "listen": {"allowed_hosts": ["mcp.example.com"], "allowed_origins": ["https://app.example.com"]}
    }
    async with running(listen) as app, httpx.AsyncClient() as http:
        headers = {**post_headers(), "host": "mcp.example.com", "origin": "https://app.example.com"}
        preflight = await http.options(
            app.mcp,
            headers={
                **headers,
                "access-control-request-method": "POST",
                "access-control-request-headers": "mcp-session-id",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        response = await http.post(
            app.mcp, content=body(request(1, "initialize", INIT_PARAMS)), headers=headers
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "mcp-session-id" in response.headers["access-control-expose-headers"]
        other = await http.post(
            app.mcp, content=b"{}", headers={**headers, "origin": "https://evil.example.com"}
        )
        assert other.status_code == 403


async def test_a_client_that_stalls_its_body_is_refused_and_does_not_hurt_others(monkeypatch):
    monkeypatch.setattr(wire, "BODY_TIMEOUT_SECONDS", 0.5)
    async with running(LIMITS) as app, httpx.AsyncClient() as http:
        port = int(app.url.rsplit(":", 1)[1])
        stream = await anyio.connect_tcp("127.0.0.1", port)
        async with stream:
            await stream.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n")
            await stream.send(b"Content-Length: 100\r\n\r\n{")  # and never the rest
            sid = await initialize(http, app.mcp)
            ok = await http.post(app.mcp, content=body(request(2, "ping")), headers=post_headers(sid))
            assert ok.status_code == 200
            with anyio.fail_after(10):
                answer = await stream.receive()
            assert answer.startswith(b"HTTP/1.1 400")
            assert b"not received in time" in answer or b"-32600" in answer


async def test_unexpected_errors_become_a_generic_500_without_internals():
    from starlette.routing import Route

    async def broken(request):
        raise RuntimeError("secret internals: /etc/passwd")

    async with running(extra_routes=[Route("/api/broken", broken)]) as app, httpx.AsyncClient() as http:
        response = await http.get(f"{app.url}/api/broken")
        assert response.status_code == 500
        assert response.json() == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32603, "message": "internal error", "data": {"reason": "internal_error"}},
        }
        assert "secret" not in response.text
        with anyio.fail_after(5):
            assert (await http.get(f"{app.url}/healthz")).status_code == 200
