"""Shared helpers of the telemetry tests: a real HTTP server on 127.0.0.1 for any ASGI app, and a test clock."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import anyio
import uvicorn

from bastion.core.gateway import Gateway
from bastion.telemetry.config import TelemetryConfig
from bastion.telemetry.install import Telemetry, build_telemetry
from tests.peers import free_port


def attach(gateway: Gateway, config: TelemetryConfig | None = None, **options: Any) -> Telemetry:
    """Build telemetry for `gateway` and add its contribution, as the composition root does (here to a gateway
    that may already run: its observers, tracer and closing apply from now on)."""
    telemetry = build_telemetry(config, gateway, **options)
    gateway.use(telemetry.contribution)
    return telemetry


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, *, lifespan: str = "off") -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free loopback port; yields its base URL (`http://127.0.0.1:PORT`)."""
    port = free_port()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)  # listening before uvicorn starts: clients can connect at once, no readiness race
    server = uvicorn.Server(uvicorn.Config(app, lifespan=lifespan, log_level="warning", access_log=False))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.serve(sockets=[sock]))
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                server.should_exit = True
    finally:
        sock.close()


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
