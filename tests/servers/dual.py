"""A dual-era official-SDK server whose tools need the client mid-call (sampling, elicitation, roots, logs,
progress), for era-bridging tests: the SDK serves it in the handshake era and in 2026-07-28 alike."""

from __future__ import annotations

import sys

from mcp import types
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import BaseModel


class Consent(BaseModel):
    ok: bool


def build(name: str = "dual") -> MCPServer:
    server = MCPServer(name, instructions=f"{name} asks its client for help")

    @server.tool()
    async def ask_model(question: str, ctx: Context) -> str:
        """Ask the client's model (sampling during the call)."""
        result = await ctx.session.create_message(
            messages=[
                types.SamplingMessage(role="user", content=types.TextContent(type="text", text=question))
            ],
            max_tokens=20,
        )
        content = result.content
        return f"model said: {content.text if isinstance(content, types.TextContent) else '?'}"

    @server.tool()
    async def ask_user(ctx: Context) -> str:
        """Ask the client's user (form elicitation during the call)."""
        answer = await ctx.elicit("Proceed?", Consent)
        return f"user said: {answer.action} {getattr(answer, 'data', None)}"

    @server.tool()
    async def roots(ctx: Context) -> str:
        """List the client's roots."""
        listed = await ctx.session.list_roots()
        return ",".join(str(r.uri) for r in listed.roots)

    @server.tool()
    async def chatty(ctx: Context) -> str:
        """Log a line and report progress, then answer."""
        await ctx.info("working")
        await ctx.report_progress(1, 1)
        return "done"

    return server


if __name__ == "__main__":
    build(sys.argv[1] if len(sys.argv) > 1 else "dual").run()
