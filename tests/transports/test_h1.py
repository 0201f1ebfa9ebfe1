"""`H1Client` against a real HTTP/1.1 server on 127.0.0.1 (an asyncio server speaking raw bytes)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
import httpx
import pytest

from bastion.transports.h1 import H1Client

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

ReadHead = Callable[[asyncio.StreamReader], Awaitable[bytes]]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, ReadHead], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server on a free loopback port; yields its URL and the request heads it read (one per request)."""
    heads: list[bytes] = []

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer, read_head)
        finally:
            writer.close()

    async def read_head(reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                await reader.readexactly(int(line.split(b":")[1]))
        return head

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/mcp", heads
    finally:
        server.close()


def client(**headers: str) -> H1Client:
    return H1Client(
        headers,
        timeout=5,
        connect_timeout=5,
        max_connections=4,
        max_keepalive_connections=4,
        keepalive_expiry=4,
    )


async def keep_alive_server(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, read_head: ReadHead
) -> None:
    with anyio.fail_after(5):
        while True:
            try:
                await read_head(reader)
            except asyncio.IncompleteReadError:
                return
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
            await writer.drain()


async def test_requests_reuse_one_keep_alive_connection_and_carry_default_headers():
    connections = 0

    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, read_head: ReadHead
    ) -> None:
        nonlocal connections
        connections += 1
        await keep_alive_server(reader, writer, read_head)

    async with serving(handler) as (url, heads):
        http = client(authorization="Bearer secret")
        try:
            for _ in range(3):
                async with http.stream("POST", url, content=b"{}", headers={"accept": "x"}) as response:
                    assert response.status_code == 200
                    assert response.headers.get("Content-Type") == "application/json"
                    assert b"".join([c async for c in response.aiter_bytes()]) == b"{}"
        finally:
            await http.aclose()
    assert connections == 1
    assert len(heads) == 3
    assert b"authorization: Bearer secret\r\n" in heads[0]
    assert heads[0].startswith(b"POST /mcp HTTP/1.1\r\nhost: 127.0.0.1:")


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent():
    async with serving(keep_alive_server) as (url, heads):
        http = client()
        try:
            with pytest.raises(httpx.LocalProtocolError):
                async with http.stream("POST", url, content=b"{}", headers={"x-a": "1\r\nx-injected: 2"}):
                    pass
        finally:
            await http.aclose()
    assert heads == []
    with pytest.raises(ValueError):
        client(**{"x-b": "v\nx-injected: 1"})


async def test_a_body_ended_by_the_server_closing_is_read_to_its_end():
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, read_head: ReadHead
    ) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nhello ")
        await writer.drain()
        writer.write(b"world")
        await writer.drain()

    async with serving(handler) as (url, _):
        http = client()
        try:
            async with http.stream("POST", url, content=b"{}") as response:
                assert await response.aread() == b"hello world"
        finally:
            await http.aclose()


async def test_a_response_cut_short_raises_a_transport_error():
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, read_head: ReadHead
    ) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort")
        await writer.drain()

    async with serving(handler) as (url, _):
        http = client()
        try:
            with pytest.raises(httpx.TransportError):
                async with http.stream("POST", url, content=b"{}") as response:
                    await response.aread()
        finally:
            await http.aclose()


async def test_a_refused_connection_is_a_connect_error():
    async with serving(keep_alive_server) as (url, _):
        pass  # the server is closed now: its port refuses connections
    http = client()
    try:
        with pytest.raises(httpx.ConnectError):
            async with http.stream("POST", url, content=b"{}"):
                pass
    finally:
        await http.aclose()


async def test_a_silent_server_times_out_the_read():
    async def handler(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, read_head: ReadHead
    ) -> None:
        await read_head(reader)
        await asyncio.sleep(5)

    async with serving(handler) as (url, _):
        http = client()
        try:
            with anyio.fail_after(5), pytest.raises(httpx.ReadTimeout):
                async with http.stream("POST", url, content=b"{}", timeout=0.2):
                    pass
        finally:
            await http.aclose()
