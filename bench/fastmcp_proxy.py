"""FastMCP's proxy in front of one MCP server, as a benchmark target (run with .peers/venv-fastmcp/bin/python).

Usage: fastmcp_proxy.py UPSTREAM_URL PORT  (serves Streamable HTTP at http://127.0.0.1:PORT/mcp)
"""

from __future__ import annotations

import sys

from fastmcp.server import create_proxy


def main() -> None:
    proxy = create_proxy(sys.argv[1])
    proxy.run(
        transport="http", host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", show_banner=False
    )


if __name__ == "__main__":
    main()
