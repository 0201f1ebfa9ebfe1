"""Count the Bastion functions one warm `tools/call` passes through (the "path of one call" in docs/architecture.md).

Why: the core redesign promises fewer hops than before; this makes the claim a command rather than a sentence.
In process (memory transports), an official-SDK client calls `calc__add` on an official-SDK server through a real
`Gateway`; after a few warm-up calls, `sys.setprofile` records every Python call whose code lives under the
`bastion` package while one call runs (in every task of the loop). Prints the number of calls, of distinct
functions and of files, and with `--list` the files in first-call order.

    PYTHONPATH=src python bench/call_path.py [--list]
    PYTHONPATH=/tmp/base/src python bench/call_path.py      # the same count on an older tree
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import anyio
from mcp.client import Client
from mcp.server import MCPServer

import bastion
from bastion.testing import client_transport, running_gateway

ROOT = str(Path(bastion.__file__).parent)


def _server() -> MCPServer:
    server = MCPServer("calc")

    @server.tool()
    def add(a: int = 0, b: int = 0) -> int:
        """Add two numbers."""
        return a + b

    return server


async def _measure() -> tuple[Counter[str], list[str]]:
    calls: Counter[str] = Counter()
    files: list[str] = []

    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call":
            return
        path = frame.f_code.co_filename
        if not path.startswith(ROOT):
            return
        rel = path[len(ROOT) + 1 :]
        calls[f"{rel}:{frame.f_code.co_name}"] += 1
        if rel not in files:
            files.append(rel)

    async with running_gateway({"calc": _server()}) as gateway:
        async with Client(client_transport(gateway)) as client:
            for _ in range(5):
                await client.call_tool("calc__add", {"a": 1, "b": 2})
            sys.setprofile(profile)
            import threading

            threading.setprofile(profile)
            try:
                result = await client.call_tool("calc__add", {"a": 2, "b": 40})
            finally:
                sys.setprofile(None)
                threading.setprofile(None)  # type: ignore[arg-type]
            assert not result.is_error, result
    return calls, files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--list", action="store_true", help="print the files and functions in first-call order"
    )
    args = parser.parse_args()
    calls, files = anyio.run(_measure)
    print(f"{sum(calls.values())} calls, {len(calls)} functions, {len(files)} files")
    if args.list:
        for rel in files:
            names = [
                f"{name.split(':', 1)[1]}x{n}" for name, n in calls.items() if name.startswith(rel + ":")
            ]
            print(f"  {rel}: {', '.join(names)}")


if __name__ == "__main__":
    main()
