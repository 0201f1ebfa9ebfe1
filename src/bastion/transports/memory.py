"""In-memory transports, for tests and embedding: no sockets, same JSON on the "wire" as stdio.

- `MemoryClientTransport` connects Bastion (as client) to an official-SDK server object running in-process.
- The other direction (an official-SDK client talking to a `Gateway` in-process) is `server/memory.py`: it needs
  the gateway, which this layer does not know.

Messages cross the boundary as JSON text, serialised and validated exactly as the SDK's stdio transport does, so a
test over memory exercises the same shapes as one over a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
from mcp import types
from mcp.shared.message import SessionMessage

from bastion.transports.base import Incoming, TransportClosed
from bastion.types import JsonDict

logger = logging.getLogger("bastion.transports.memory")


def to_session_message(message: JsonDict) -> SessionMessage:
    """A Bastion dict as the SDK's `SessionMessage` (validated like a line read from stdio)."""
    return SessionMessage(types.jsonrpc_message_adapter.validate_json(orjson.dumps(message), by_name=False))


def from_session_message(item: SessionMessage) -> JsonDict:
    """The SDK's `SessionMessage` as a Bastion dict (serialised like a line written to stdio)."""
    data: JsonDict = orjson.loads(item.message.model_dump_json(by_alias=True, exclude_unset=True))
    return data


class MemoryClientTransport:
    """Bastion's client side connected to an official-SDK `Server`/`MCPServer` running in this process."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self._incoming: asyncio.Queue[JsonDict | None] = asyncio.Queue()
        self._write: Any = None
        self._closed = asyncio.Event()
        self._opened = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # The SDK transport is an anyio context manager: it must be entered and left in one task.
        self._runner = asyncio.create_task(self._run())
        await self._opened.wait()

    async def _run(self) -> None:
        from mcp.client._memory import InMemoryTransport

        try:
            async with InMemoryTransport(self._server) as (read, write):
                self._write = write
                self._opened.set()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._pump, read)
                    await self._closed.wait()
                    tg.cancel_scope.cancel()
        finally:
            self._opened.set()
            self._incoming.put_nowait(None)

    async def _pump(self, read: Any) -> None:
        async for item in read:
            if isinstance(item, Exception):
                continue
            self._incoming.put_nowait(from_session_message(item))

    def set_protocol_version(self, version: str) -> None:
        """Nothing to do in memory."""

    async def send(self, message: JsonDict) -> None:
        if self._write is None or self._closed.is_set():
            raise TransportClosed("in-memory server is closed")
        try:
            await self._write.send(to_session_message(message))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise TransportClosed("in-memory server is closed") from exc

    async def receive(self) -> AsyncIterator[Incoming]:
        while (message := await self._incoming.get()) is not None:
            yield Incoming(message)

    async def aclose(self) -> None:
        self._closed.set()
        if self._runner is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(5):
                    await self._runner
