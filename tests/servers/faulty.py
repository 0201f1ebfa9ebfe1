"""A misbehaving MCP server (official SDK) for fault-injection tests: it records every cancellation it receives
and can hang, freeze, crash, die mid-message, or write garbage and floods to its stdout.

Usage: python faulty.py [stdio|<port>] [--record FILE]
  stdio (default) serves on stdin/stdout; a port serves Streamable HTTP on 127.0.0.1.
  --record FILE appends one JSON line per event: `{"event": "call", "id": <request id>, "tool": ...}` for each
  tools/call, `{"event": "cancelled", "requestId": ..., "reason": ...}` for each `notifications/cancelled`, and
  `{"event": "interrupted", "tool": ...}` when a running tool is stopped by it.

Raw writes (garbage, floods, a torn message) go to the wire itself: the SDK moves the real stdout to a private
descriptor while it serves, so they are written there.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from mcp.server import MCPServer
from mcp.server import stdio as sdk_stdio
from mcp.server.mcpserver import Context


class Record:
    """Appends events to a JSON-lines file (each write is one `write` call, so lines never interleave)."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None

    def add(self, **event: Any) -> None:
        if self.path is not None:
            with self.path.open("a") as out:
                out.write(json.dumps(event) + "\n")

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        """SDK middleware: sees every inbound message, notifications included."""
        params = dict(ctx.params or {})
        if ctx.method == "notifications/cancelled":
            self.add(event="cancelled", requestId=params.get("requestId"), reason=params.get("reason"))
        elif ctx.method == "tools/call":
            self.add(event="call", id=ctx.request_id, tool=params.get("name"))
        return await call_next(ctx)


def wire_write(data: bytes) -> None:
    """Write raw bytes to the MCP wire (stdout), bypassing the SDK's framing."""
    claim = sdk_stdio._claims.get(1)
    fd = claim.private_fd if claim is not None and claim.private_fd is not None else 1
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def build(record: Record) -> MCPServer:
    server = MCPServer("faulty", middleware=[record])

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    @server.tool()
    def seen_headers(ctx: Context) -> dict[str, str]:
        """Every HTTP header this call arrived with (over HTTP; empty over stdio)."""
        return dict(ctx.headers or {})

    @server.tool()
    async def hang(seconds: float = 3600) -> str:
        """Wait (for timeouts and cancellation); records when a cancellation interrupts it."""
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            record.add(event="interrupted", tool="hang")
            raise
        return "done"

    @server.tool()
    async def freeze(seconds: float = 3600) -> str:
        """Block the event loop: the process stays alive but answers nothing, not even ping or server/discover."""
        time.sleep(seconds)
        return "thawed"

    @server.tool()
    def crash() -> str:
        """Exit at once, mid-call."""
        os._exit(3)

    @server.tool()
    def die_mid_message() -> str:
        """Write the first half of a JSON-RPC message, then exit."""
        wire_write(b'{"jsonrpc":"2.0","id":')
        os._exit(4)

    @server.tool()
    def garbage(lines: int = 100) -> str:
        """Write lines that are not JSON-RPC (bad JSON, invalid UTF-8, wrong shapes, a stray response), then answer."""
        samples = [
            b"this is not json",
            b'{"jsonrpc": "2.0", "id": ',
            b"\xff\xfe\xfd not utf-8",
            b"[1, 2, 3]",
            b'{"jsonrpc":"1.0","id":1,"method":"x"}',
            b'{"jsonrpc":"2.0","id":987654321,"result":{}}',
            b"[" * 5000 + b"]" * 5000,
        ]
        wire_write(b"".join(samples[i % len(samples)] + b"\n" for i in range(lines)))
        return f"wrote {lines} bad lines"

    @server.tool()
    def huge_line(megabytes: int = 64) -> str:
        """Write one line of `megabytes` MiB (over any sane line limit), then answer."""
        chunk = b"x" * (1024 * 1024)
        for _ in range(megabytes):
            wire_write(chunk)
        wire_write(b"\n")
        return f"wrote a {megabytes} MiB line"

    return server


def main(argv: list[str]) -> None:
    record = Record(argv[argv.index("--record") + 1] if "--record" in argv else None)
    server = build(record)
    where = argv[1] if len(argv) > 1 and not argv[1].startswith("--") else "stdio"
    if where.isdigit():
        server.run("streamable-http", host="127.0.0.1", port=int(where))
    else:
        server.run()


if __name__ == "__main__":
    main(sys.argv)
