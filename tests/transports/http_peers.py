"""Real HTTP MCP peers as subprocesses on loopback ports (the SDK calc server, server-everything), and an
in-process ASGI server for wire shapes no real peer sends. Shared by the transport and interop tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio

from tests.peers import EVERYTHING_JS, LOOPBACK_CJS, NODE, ROOT, free_port

CALC_HTTP = ROOT / "tests/servers/calc_http.py"


class Peer:
    """One HTTP MCP server process on a fixed loopback port, which a test can kill and start again."""

    def __init__(self, argv: Sequence[str], port: int, path: str, env: dict[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.port = port
        self.url = f"http://127.0.0.1:{port}{path}"
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
        )
        with anyio.fail_after(30):
            while not _accepts(self.port):
                if self.process.poll() is not None:
                    raise RuntimeError(f"peer exited with {self.process.returncode}")
                await anyio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-whatever, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.asynccontextmanager
async def running(peer: Peer) -> AsyncIterator[Peer]:
    await peer.start()
    try:
        yield peer
    finally:
        peer.stop()


def calc_peer(kind: str = "http") -> Peer:
    """tests/servers/calc_http.py: `http`, `http-json`, `http-resumable` or `sse`."""
    port = free_port()
    return Peer([sys.executable, str(CALC_HTTP), kind, str(port)], port, "/sse" if kind == "sse" else "/mcp")


def everything_peer(kind: str = "streamableHttp") -> Peer:
    """server-everything over `streamableHttp` (/mcp) or `sse` (/sse), bound to loopback."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "NODE_OPTIONS": f"--require {LOOPBACK_CJS}"}
    return Peer([NODE, str(EVERYTHING_JS), kind], port, "/sse" if kind == "sse" else "/mcp", env)


@contextlib.asynccontextmanager
async def serve_app(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app on a loopback port in this process (for wire shapes no real peer produces)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=2
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        with anyio.fail_after(10):
            while not server.started:
                await anyio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
