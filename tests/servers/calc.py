"""A small official-SDK server used as an upstream in tests (in memory, over stdio, or over HTTP)."""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server import MCPServer
from mcp.server.mcpserver import Context


def build(name: str = "calc") -> MCPServer:
    server = MCPServer(name, instructions=f"{name} does arithmetic")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    @server.tool()
    async def slow_count(n: int, ctx: Context) -> str:
        """Count to n, reporting progress."""
        for i in range(n):
            await ctx.report_progress(i + 1, n)
        return f"counted {n}"

    @server.tool()
    async def sleep(seconds: float) -> str:
        """Sleep, then answer (for timeouts and cancellation)."""
        await asyncio.sleep(seconds)
        return "slept"

    @server.tool()
    def crash() -> str:
        """Exit the whole server process at once (for supervision tests)."""
        os._exit(3)

    @server.tool()
    async def grow(ctx: Context) -> str:
        """Add a tool named `extra` and tell clients the list changed."""
        if "extra" not in {t.name for t in await server.list_tools()}:
            server.add_tool(lambda: "extra!", name="extra", description="Added at run time.")
        await ctx.notify_tools_changed()
        return "grown"

    @server.prompt()
    def greet(who: str) -> str:
        """Greet someone."""
        return f"Hello, {who}!"

    @server.resource("calc://constants/pi")
    def pi() -> str:
        """The number pi."""
        return "3.14159"

    @server.resource("calc://square/{n}")
    def square(n: str) -> str:
        """A square of n."""
        return str(int(n) ** 2)

    return server


if __name__ == "__main__":
    srv = build(sys.argv[2] if len(sys.argv) > 2 else "calc")
    if len(sys.argv) > 1 and sys.argv[1].isdigit():
        srv.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
    else:
        srv.run()
