"""The calc server (tests/servers/calc.py) served over HTTP, with extras that exercise an HTTP client transport.

Usage: python calc_http.py <kind> <port> [name]
  kind: `http` (Streamable HTTP, SSE responses), `http-json` (JSON responses), `http-resumable` (with an event
  store and `retry:`, so streams can be closed mid-call and resumed), `sse` (legacy HTTP+SSE at /sse).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path
from typing import Annotated

from mcp.server.mcpserver import Context
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.types import JSONRPCMessage
from pydantic import Field

sys.path.insert(0, str(Path(__file__).parent))
from calc import build

ECHOED_HEADERS = (
    "traceparent",
    "mcp-name",
    "mcp-method",
    "mcp-protocol-version",
    "x-api-key",
    "mcp-session-id",
)


class MemoryEventStore(EventStore):
    """Every event in memory, replayed per stream after a `Last-Event-ID` (enough for one test run)."""

    def __init__(self) -> None:
        self._events: list[tuple[str, StreamId, JSONRPCMessage | None]] = []
        self._ids = itertools.count(1)

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        event_id = f"{stream_id}:{next(self._ids)}"
        self._events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(
        self, last_event_id: EventId, send_callback: EventCallback
    ) -> StreamId | None:
        index = next((i for i, e in enumerate(self._events) if e[0] == last_event_id), None)
        if index is None:
            return None
        stream_id = self._events[index][1]
        for event_id, stream, message in self._events[index + 1 :]:
            if stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


def build_http(name: str):
    server = build(name)

    @server.tool()
    def seen_headers(ctx: Context) -> dict[str, str]:
        """The HTTP headers this call arrived with (the ones a transport test cares about)."""
        headers = ctx.headers or {}
        return {k: headers[k] for k in ECHOED_HEADERS if k in headers}

    @server.tool()
    def regional(
        region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})], ctx: Context
    ) -> str:
        """Echo an argument the client must mirror into `Mcp-Param-Region` (2026-07-28), with that header."""
        return f"{region} {(ctx.headers or {}).get('mcp-param-region')}"

    @server.tool()
    async def poll_count(n: int, ctx: Context) -> str:
        """Count to n with progress, closing the response stream after each step (SSE polling)."""
        for i in range(n):
            await ctx.report_progress(i + 1, n)
            await ctx.close_sse_stream()
            await asyncio.sleep(0.05)
        return f"polled {n}"

    @server.tool()
    async def drop_get_stream(ctx: Context) -> str:
        """Close the standalone GET stream (the client should reconnect to it)."""
        await ctx.close_standalone_sse_stream()
        return "dropped"

    @server.tool()
    async def announce_tools_changed(ctx: Context) -> str:
        """Send tools/list_changed on the standalone GET stream (handshake era)."""
        await ctx.session.send_tool_list_changed()
        return "announced"

    cancelled: list[str] = []

    @server.tool()
    async def wait_for_cancel(ctx: Context) -> str:
        """Wait until cancelled, and remember that the cancellation reached the server."""
        try:
            await asyncio.sleep(120)
        except asyncio.CancelledError:
            cancelled.append(ctx.request_id)
            raise
        return "not cancelled"

    @server.tool()
    def cancelled_calls() -> int:
        """How many wait_for_cancel calls were cancelled so far."""
        return len(cancelled)

    return server


if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    srv = build_http(sys.argv[3] if len(sys.argv) > 3 else "calc")
    if kind == "sse":
        srv.run("sse", host="127.0.0.1", port=port)
    elif kind == "http-resumable":
        srv.run(
            "streamable-http", host="127.0.0.1", port=port, event_store=MemoryEventStore(), retry_interval=50
        )
    else:
        srv.run("streamable-http", host="127.0.0.1", port=port, json_response=kind == "http-json")
