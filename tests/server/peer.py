"""An official-SDK server run in the test's own process, with tools a test can observe and steer."""

from __future__ import annotations

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context


class Peer:
    """`hold` blocks until the test releases it (and records being cancelled); `tick` streams progress slowly."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.release = anyio.Event()
        self.cancelled = anyio.Event()

    def build(self) -> MCPServer:
        server = MCPServer("peer")

        @server.tool()
        async def hold() -> str:
            """Wait until the test releases the call."""
            self.started.set()
            try:
                await self.release.wait()
            except anyio.get_cancelled_exc_class():
                self.cancelled.set()
                raise
            return "released"

        @server.tool()
        async def tick(n: int, ctx: Context) -> str:
            """Report progress n times; after the first, wait until the test releases the call."""
            for i in range(n):
                await ctx.report_progress(i + 1, n)
                if i == 0:
                    self.started.set()
                    await self.release.wait()
            return f"ticked {n}"

        return server
