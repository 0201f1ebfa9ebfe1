"""The outer ASGI layers on their own: Host/Origin checks, the body limit, and the catch-all."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from bastion.server.middleware import BodyLimitMiddleware, CatchAllMiddleware, HostOriginMiddleware
from bastion.server.wire import Rejections, read_body, send_json
from tests.server.conftest import Recorder, calc_gateway

pytestmark = pytest.mark.anyio


async def echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    data = await read_body(receive, 1 << 30)
    await send_json(send, 200, str(len(data)).encode())


async def explode(scope: Scope, receive: Receive, send: Send) -> None:
    raise KeyError("internal detail")


def _stack(inner, **host_options) -> tuple[object, Recorder]:
    gateway = calc_gateway()
    recorder = Recorder()
    gateway.notice_observers.append(recorder)
    rejections = Rejections(gateway, "http")
    app = BodyLimitMiddleware(inner, max_bytes=100, rejections=rejections)
    app = HostOriginMiddleware(app, rejections=rejections, **{"listen_host": "127.0.0.1", **host_options})
    return CatchAllMiddleware(app, rejections=rejections), recorder


async def _post(app, *, host="127.0.0.1:8765", origin=None, content=b"{}", path="/mcp") -> httpx.Response:
    headers = {"host": host}
    if origin is not None:
        headers["origin"] = origin
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://x") as client:
        return await client.post(path, content=content, headers=headers)


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1:8765", 200),
        ("localhost:1", 200),
        ("[::1]:8765", 200),
        ("LOCALHOST", 200),
        ("mcp.internal:443", 200),
        ("api.example.com:8443", 200),
        ("api.example.com:9999", 421),
        ("evil.example", 421),
        ("127.0.0.1.evil.example", 421),
        ("localhost:abc", 421),
        ("[::1", 421),
        ("", 421),
    ],
)
async def test_host_header_must_name_this_gateway(host, status):
    app, _ = _stack(echo_length, allowed_hosts=["mcp.internal", "api.example.com:8443"])
    assert (await _post(app, host=host)).status_code == status


async def test_a_wildcard_listen_address_is_not_a_valid_host_but_a_star_allows_any():
    strict, _ = _stack(echo_length, listen_host="0.0.0.0")
    assert (await _post(strict, host="0.0.0.0:8765")).status_code == 421
    assert (await _post(strict, host="10.1.2.3:8765")).status_code == 421
    anything, _ = _stack(echo_length, listen_host="0.0.0.0", allowed_hosts=["*"])
    assert (await _post(anything, host="10.1.2.3:8765")).status_code == 200
    own, _ = _stack(echo_length, listen_host="10.1.2.3")
    assert (await _post(own, host="10.1.2.3:8765")).status_code == 200


@pytest.mark.parametrize(
    ("origin", "status"),
    [
        ("http://127.0.0.1:8765", 200),
        ("http://localhost:3000", 200),
        ("https://app.example.com", 200),
        ("https://app.example.com/", 200),
        ("https://app.example.com.evil.example", 403),
        ("http://evil.example", 403),
        ("null", 403),
        ("file://", 403),
        ("http://[::1", 403),
    ],
)
async def test_a_present_origin_must_be_loopback_same_origin_or_allowed(origin, status):
    app, recorder = _stack(echo_length, allowed_origins=["https://app.example.com"])
    response = await _post(app, origin=origin)
    assert response.status_code == status
    if status == 403:
        assert response.json()["error"]["data"]["reason"] == "forbidden"
        assert recorder.notices[-1].detail["status"] == 403


async def test_same_origin_requests_get_no_cors_headers_and_cross_origin_ones_do():
    app, _ = _stack(
        echo_length, allowed_hosts=["mcp.example.com"], allowed_origins=["https://ui.example.com"]
    )
    same = await _post(app, host="mcp.example.com", origin="http://mcp.example.com")
    assert same.status_code == 200 and "access-control-allow-origin" not in same.headers
    cross = await _post(app, host="mcp.example.com", origin="https://ui.example.com")
    assert cross.headers["access-control-allow-origin"] == "https://ui.example.com"


async def test_health_paths_are_served_whatever_the_host():
    app, _ = _stack(echo_length)
    assert (await _post(app, host="10.9.8.7:8765", path="/healthz")).status_code == 200
    assert (await _post(app, host="10.9.8.7:8765", path="/readyz")).status_code == 200


async def test_bodies_over_the_limit_are_refused_declared_or_streamed():
    app, recorder = _stack(echo_length)
    assert (await _post(app, content=b"x" * 100)).json() == 100
    declared = await _post(app, content=b"x" * 101)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == -32600

    async def stream() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 30

    streamed = await _post(app, content=stream())
    assert streamed.status_code == 413
    assert [n.detail["reason"] for n in recorder.notices] == ["too_large", "too_large"]


async def test_a_malformed_content_length_is_400():
    app, _ = _stack(echo_length)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as client:
        request = client.build_request("POST", "/mcp", content=b"{}")
        request.headers["content-length"] = "12abc"
        assert (await client.send(request)).status_code == 400


async def test_an_unexpected_exception_is_a_generic_500_json_rpc_error(caplog):
    app, _ = _stack(explode)
    response = await _post(app)
    assert response.status_code == 500
    assert response.json()["error"] == {
        "code": -32603,
        "message": "internal error",
        "data": {"reason": "internal_error"},
    }
    assert "internal detail" not in response.text
    assert "KeyError" in caplog.text  # the details go to the log
