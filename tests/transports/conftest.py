"""Fixtures for the client-transport tests: a gateway in front of real HTTP peers, and an SDK client on top."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from mcp import Client, types

from bastion.config import parse_config
from bastion.core.gateway import Gateway
from bastion.testing import client_transport
from bastion.upstream.connection import State
from tests.interop.conftest import CLIENT_CALLBACKS
from tests.transports.http_peers import Peer, calc_peer, everything_peer, running, serve_app

__all__ = ["Peer", "calc_peer", "everything_peer", "running", "serve_app"]


@pytest.fixture
async def calc_http() -> AsyncIterator[Peer]:
    async with running(calc_peer("http")) as peer:
        yield peer


def http_server_config(url: str, transport: str = "streamable-http", **extra: Any) -> dict[str, Any]:
    return {"transport": transport, "url": url, "connect_timeout_seconds": 20, **extra}


@contextlib.asynccontextmanager
async def gateway_for(servers: dict[str, dict[str, Any]]) -> AsyncIterator[Gateway]:
    gateway = Gateway(parse_config({"servers": servers}))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.aclose()


async def wait_state(gateway: Gateway, name: str, predicate: Callable[[Any], bool]) -> None:
    """Wait (bounded) until the upstream connection satisfies `predicate`."""
    with anyio.fail_after(40):
        while not predicate(gateway.upstreams[name]):
            await anyio.sleep(0.02)


def is_ready(conn: Any) -> bool:
    return bool(conn.state is State.READY)


def is_down(conn: Any) -> bool:
    return bool(conn.state is not State.READY)


def sdk_client(gateway: Gateway, **kwargs: Any) -> Client:
    """The official SDK client on top of the gateway, with every server->client callback."""
    return Client(client_transport(gateway), **{**CLIENT_CALLBACKS, **kwargs})


def text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
