"""Slow and stuck HTTP clients on real sockets: connections whose headers never complete are cut off by `bastion
serve` (and audited), and a client that never reads its SSE stream is dropped; everyone else is served meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sqlite3
from pathlib import Path

import anyio
import httpx
import pytest

from bastion.config.model import LimitsConfig
from bastion.server import reply as reply_module
from tests.peers import calc_stdio
from tests.reliability.conftest import serving, wait_for, write_config
from tests.server.conftest import body, initialize, post_headers, request, running

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def _header_timeouts(db: Path) -> int:
    if not db.exists():
        return 0
    connection = sqlite3.connect(db)
    try:
        (count,) = connection.execute(
            "SELECT count(*) FROM audit_events WHERE kind = 'protocol_error' "
            "AND json_extract(content, '$.detail.reason') = 'header_timeout'"
        ).fetchone()
    finally:
        connection.close()
    return int(count)


async def _closed_by_peer(stream: anyio.abc.ByteStream) -> bool:
    """True once the server closed the connection (reads EOF or a reset)."""
    try:
        while await stream.receive():
            pass
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
        return True
    return True


async def test_connections_whose_headers_never_complete_are_cut_off_and_audited(tmp_path):
    config = write_config(
        tmp_path,
        {
            "servers": {"calc": calc_stdio()},
            "limits": {"header_timeout_seconds": 1},
            "state": {"path": str(tmp_path / "state.db")},
            "audit": {"sinks": [{"type": "sqlite", "path": str(tmp_path / "audit.db")}]},
        },
    )
    async with serving(config, tmp_path) as served, httpx.AsyncClient(timeout=30) as http:
        silent = await anyio.connect_tcp("127.0.0.1", served.port)  # connects, sends nothing
        trickler = await anyio.connect_tcp("127.0.0.1", served.port)
        request_head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 4096

        async def trickle() -> None:
            with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError, ConnectionError):
                for byte in request_head:  # one byte at a time, never finishing the headers
                    await trickler.send(bytes([byte]))
                    await anyio.sleep(0.05)

        async with silent, trickler, anyio.create_task_group() as tg:
            tg.start_soon(trickle)
            sid = await initialize(http, f"{served.url}/mcp")  # others are served meanwhile
            ping = await http.post(
                f"{served.url}/mcp", content=body(request(1, "ping")), headers=post_headers(sid)
            )
            assert ping.json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
            with anyio.fail_after(20):
                assert await _closed_by_peer(silent)
                assert await _closed_by_peer(trickler)
            tg.cancel_scope.cancel()
        await wait_for(lambda: _header_timeouts(tmp_path / "audit.db") >= 2, 20)
        assert (await http.get(f"{served.url}/healthz")).status_code == 200


async def test_a_client_that_never_reads_its_sse_stream_is_dropped_and_others_are_served(monkeypatch, caplog):
    monkeypatch.setattr(reply_module, "MAX_QUEUED_FRAMES", 16)
    caplog.set_level(logging.WARNING, logger="bastion.server")
    async with running() as app, httpx.AsyncClient(timeout=30) as http:
        sid = await initialize(http, app.mcp)
        port = int(app.url.rsplit(":", 1)[1])
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window: the server must queue
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await loop.sock_connect(sock, ("127.0.0.1", port))
            params = {"name": "calc__slow_count", "arguments": {"n": 20000}, "_meta": {"progressToken": "p"}}
            payload = body(request(5, "tools/call", params))
            head = (
                "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Accept: application/json, text/event-stream\r\n"
                f"Mcp-Session-Id: {sid}\r\nMcp-Protocol-Version: 2025-11-25\r\nContent-Length: {len(payload)}\r\n\r\n"
            )
            await loop.sock_sendall(sock, head.encode() + payload)  # and never read a byte of the answer
            await wait_for(lambda: app.gateway.health()["upstreams"]["calc"]["inFlight"])
            with anyio.fail_after(60):
                pings = 0
                while "not reading" not in caplog.text:
                    pings += 1
                    ok = await http.post(
                        app.mcp,
                        content=body(request(100 + pings, "ping")),
                        headers=post_headers(sid, "2025-11-25"),
                    )
                    assert ok.json()["result"] == {}  # everyone else is served while the stream backs up
            await wait_for(
                lambda: not app.gateway.health()["upstreams"]["calc"]["inFlight"], 60
            )  # the call itself finished upstream
        finally:
            sock.close()


async def _get_healthz(stream: anyio.abc.ByteStream) -> bytes:
    await stream.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    with anyio.fail_after(10):
        return await stream.receive()


async def test_idle_keep_alive_connections_stay_open_for_the_configured_time_and_no_longer(tmp_path):
    # The default outlives the idle expiry of httpx (5 s) and nginx upstream keep-alive (60 s): the client gives up
    # on a connection first, so it never sends a request on one the server is closing at that instant.
    assert LimitsConfig().keep_alive_seconds > 60
    config = write_config(
        tmp_path,
        {
            "servers": {"calc": calc_stdio()},
            "limits": {"keep_alive_seconds": 3},
            "state": {"path": str(tmp_path / "state.db")},
            "audit": {"enabled": False},
        },
    )
    async with serving(config, tmp_path) as served:
        async with await anyio.connect_tcp("127.0.0.1", served.port) as stream:
            assert (await _get_healthz(stream)).startswith(b"HTTP/1.1 200")
            await anyio.sleep(1.5)  # idle, but within the keep-alive time: the same connection serves again
            assert (await _get_healthz(stream)).startswith(b"HTTP/1.1 200")
            await anyio.sleep(4.5)
            with anyio.fail_after(10):
                assert await _closed_by_peer(stream)
