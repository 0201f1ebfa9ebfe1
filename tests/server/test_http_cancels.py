"""Cancels that arrive as HTTP notifications reach the upstream: from 2026-07-28 clients (no session), and from
bridges that forward a handshake-era cancel without its `Mcp-Session-Id`; malformed ones get the request's error."""

from __future__ import annotations

import anyio
import httpx
import pytest

from tests.server.conftest import MODERN, body, initialize, modern_params, post_headers, request, running
from tests.server.peer import Peer

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def _cancel(request_id: object, *, modern: bool) -> bytes:
    params = {"requestId": request_id, "reason": "user stopped it"}
    note = {
        "jsonrpc": "2.0",
        "method": "notifications/cancelled",
        "params": modern_params(params) if modern else params,
    }
    return body(note)


async def _hold_then(post_call, post_cancel, peer: Peer) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(post_call)
        with anyio.fail_after(10):
            await peer.started.wait()
        await post_cancel()
        with anyio.fail_after(10):
            await peer.cancelled.wait()
        tg.cancel_scope.cancel()


async def test_a_2026_07_28_cancel_notification_cancels_the_call_upstream():
    peer = Peer()
    async with running(peer=peer) as app, httpx.AsyncClient(timeout=10) as http:
        call = body(request(7, "tools/call", modern_params({"name": "peer__hold", "arguments": {}})))
        call_headers = post_headers(version=MODERN, **{"mcp-method": "tools/call", "mcp-name": "peer__hold"})

        async def post_call() -> None:
            await http.post(app.mcp, content=call, headers=call_headers)

        async def post_cancel() -> None:
            headers = post_headers(version=MODERN, **{"mcp-method": "notifications/cancelled"})
            response = await http.post(app.mcp, content=_cancel(7, modern=True), headers=headers)
            assert response.status_code == 202

        await _hold_then(post_call, post_cancel, peer)
        await app.recorder.wait_for(lambda: any(e.outcome == "cancelled" for e in app.recorder.exchanges))


async def test_a_cancel_forwarded_without_its_session_id_still_cancels_the_callers_call():
    peer = Peer()
    async with running(peer=peer) as app, httpx.AsyncClient(timeout=10) as http:
        session_id = await initialize(http, app.mcp)
        call = body(request(9, "tools/call", {"name": "peer__hold", "arguments": {}}))

        async def post_call() -> None:
            await http.post(app.mcp, content=call, headers=post_headers(session_id, "2025-11-25"))

        async def post_cancel() -> None:
            response = await http.post(
                app.mcp, content=_cancel(9, modern=False), headers=post_headers(version="2025-11-25")
            )
            assert response.status_code == 202

        await _hold_then(post_call, post_cancel, peer)


async def test_a_sessionless_cancel_naming_no_call_is_still_a_400():
    async with running() as app, httpx.AsyncClient(timeout=10) as http:
        response = await http.post(app.mcp, content=_cancel(99, modern=False), headers=post_headers())
        assert response.status_code == 400


async def test_a_modern_notification_without_the_version_header_gets_the_same_error_as_a_request():
    async with running() as app, httpx.AsyncClient(timeout=10) as http:
        headers = post_headers(**{"mcp-method": "notifications/cancelled"})
        note = await http.post(app.mcp, content=_cancel(1, modern=True), headers=headers)
        call = body(request(1, "tools/call", modern_params({"name": "calc__add", "arguments": {}})))
        req = await http.post(
            app.mcp,
            content=call,
            headers=post_headers(**{"mcp-method": "tools/call", "mcp-name": "calc__add"}),
        )
        assert (note.status_code, note.json()["error"]["code"]) == (400, -32020)
        assert (req.status_code, req.json()["error"]["code"]) == (400, -32020)
        assert "None" not in note.text


async def test_a_modern_notification_with_an_unknown_version_names_that_version():
    async with running() as app, httpx.AsyncClient(timeout=10) as http:
        headers = post_headers(version="2099-01-01", **{"mcp-method": "notifications/cancelled"})
        response = await http.post(app.mcp, content=_cancel(1, modern=True), headers=headers)
        error = response.json()["error"]
        assert (response.status_code, error["code"], error["data"]["requested"]) == (
            400,
            -32022,
            "2099-01-01",
        )
