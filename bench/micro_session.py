"""Gateway overhead per call with no I/O at all: a raw session in front of an instant in-process upstream.

Prints microseconds per tools/call through session -> pipeline -> routing -> upstream connection -> back.
Run: .venv/bin/python bench/micro_session.py [calls]
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Final

from bastion.config import BastionConfig, parse_config
from bastion.core.gateway import Gateway
from bastion.transports.base import Incoming


class InstantUpstream:
    """A ClientTransport that answers like a tiny MCP server, immediately."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def start(self) -> None: ...

    def set_protocol_version(self, version: str) -> None: ...

    async def send(self, m: dict[str, Any]) -> None:
        method = m.get("method")
        if "id" not in m or method is None:
            return
        if method == "initialize":
            result: dict[str, Any] = {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "x", "version": "1"},
            }
        elif method == "tools/list":
            result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": m["params"]["arguments"]["text"]}]}
        else:
            self.queue.put_nowait(
                {"jsonrpc": "2.0", "id": m["id"], "error": {"code": -32601, "message": "no"}}
            )
            return
        self.queue.put_nowait({"jsonrpc": "2.0", "id": m["id"], "result": result})

    async def receive(self) -> AsyncIterator[Incoming]:
        while True:
            yield Incoming(await self.queue.get())

    async def aclose(self) -> None: ...


class Out:
    def __init__(self) -> None:
        self.waiters: dict[Any, asyncio.Future[dict[str, Any]]] = {}

    async def send(self, message: dict[str, Any], related: Any) -> None:
        fut = self.waiters.pop(message.get("id"), None)
        if fut is not None:
            fut.set_result(message)


Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
"""`call(method, params)`: one request on a memory session, answered with its reply (ids are numbered for you)."""

ECHO_CALL: Final = {"name": "up__echo", "arguments": {"text": "x" * 100}}
"""`tools/call` params of the 100-byte echo every in-process bench times."""


def instant_config() -> BastionConfig:
    """One handshake-era upstream named `up`, served by `InstantUpstream` (the command is never run)."""
    return parse_config({"servers": {"up": {"transport": "stdio", "command": "x", "protocol": "legacy"}}})


async def initialized_session(gw: Gateway) -> Call:
    """A memory session on a started gateway, past `initialize`; returns the function that makes calls on it."""
    out = Out()
    session = await gw.open_session(transport="memory", outbound=out)
    loop = asyncio.get_running_loop()
    ids = itertools.count(1)

    async def call(method: str, params: dict[str, Any]) -> dict[str, Any]:
        i = next(ids)
        future = loop.create_future()
        out.waiters[i] = future
        await session.handle({"jsonrpc": "2.0", "id": i, "method": method, "params": params})
        reply: dict[str, Any] = await future
        assert "result" in reply, reply
        return reply

    await call(
        "initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "b"}}
    )
    await session.handle({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return call


async def main(n: int) -> None:
    gw = Gateway(instant_config(), transports={"up": InstantUpstream})
    await gw.start()
    call = await initialized_session(gw)
    for _ in range(200):
        await call("tools/call", ECHO_CALL)
    t0 = time.perf_counter()
    for _ in range(n):
        await call("tools/call", ECHO_CALL)
    dt = time.perf_counter() - t0
    print(f"{n} calls: {dt / n * 1e6:.1f} us/call (gateway overhead, no I/O)")
    await gw.aclose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
