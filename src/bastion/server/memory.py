"""The in-memory server side: an official-SDK client talks to a `Gateway` in this process (`bastion.testing`).

Messages cross as JSON text through `transports/memory.py`'s converters, as over stdio; this half lives with the
server adapters because it opens a gateway session, which the transports layer does not know.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio
from mcp.shared.message import SessionMessage

from bastion.transports.memory import from_session_message, to_session_message
from bastion.types import ANONYMOUS, JsonDict, Principal, RequestId

if TYPE_CHECKING:
    from bastion.core.gateway import Gateway
    from bastion.core.session import DownstreamSession


class _StreamOutbound:
    def __init__(self, send: Any) -> None:
        self._send = send

    async def send(self, message: JsonDict, related: RequestId | None) -> None:
        await self._send.send(to_session_message(message))


@contextlib.asynccontextmanager
async def memory_server_transport(
    gateway: Gateway,
    *,
    principal: Principal = ANONYMOUS,
) -> AsyncIterator[tuple[Any, Any]]:
    """An SDK client `Transport` (yields `(read, write)`) served by `gateway` in this process."""
    to_client_send, to_client_recv = anyio.create_memory_object_stream[SessionMessage | Exception](64)
    to_server_send, to_server_recv = anyio.create_memory_object_stream[SessionMessage | Exception](64)
    session: DownstreamSession = await gateway.open_session(
        transport="memory", principal=principal, outbound=_StreamOutbound(to_client_send)
    )

    async def pump() -> None:
        async for item in to_server_recv:
            if not isinstance(item, Exception):
                await session.handle(from_session_message(item))

    async with (
        to_client_send,
        to_client_recv,
        to_server_send,
        to_server_recv,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(pump)
        try:
            yield to_client_recv, to_server_send
        finally:
            tg.cancel_scope.cancel()
            await session.aclose()
