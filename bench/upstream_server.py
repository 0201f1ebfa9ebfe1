"""The benchmark's upstream: an official-SDK MCP server with `echo(text)` and `blob(kb)` tools.

Run: python bench/upstream_server.py stdio | python bench/upstream_server.py http PORT
"""

from __future__ import annotations

import sys

from mcp.server import MCPServer

server = MCPServer("bench-upstream", log_level="WARNING")  # no per-request log lines in the measured path


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def blob(kb: int) -> str:
    """Return `kb` kilobytes of text (a large tool result)."""
    line = "The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs.\n"
    size = max(0, kb) * 1024
    return (line * (size // len(line) + 1))[:size]


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
