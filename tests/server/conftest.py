"""Bastion's HTTP app under a real uvicorn on 127.0.0.1, in front of real SDK servers, plus raw-HTTP helpers."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import uvicorn
import yaml

from bastion.config import parse_config
from bastion.core.gateway import Gateway
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.server.app import create_app
from bastion.transports.memory import MemoryClientTransport
from tests.peers import bastion_env, free_port
from tests.server.peer import Peer
from tests.servers.calc import build as build_calc

INIT_PARAMS = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "raw-test", "version": "1"},
}
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"


class Recorder:
    """Notice and exchange observer: what the gateway reported while a test ran."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.exchanges: list[Exchange] = []
        self.changed = anyio.Event()

    async def on_notice(self, notice: Notice) -> None:
        self.notices.append(notice)
        self._wake()

    async def on_exchange(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    def kinds(self, kind: NoticeKind) -> list[Notice]:
        return [n for n in self.notices if n.kind is kind]

    async def wait_for(self, predicate: Callable[[], bool], seconds: float = 10) -> None:
        with anyio.fail_after(seconds):
            while not predicate():
                await self.changed.wait()


@dataclass
class Running:
    """A served app: its base URL and the gateway behind it."""

    url: str
    gateway: Gateway
    recorder: Recorder = field(default_factory=Recorder)

    @property
    def mcp(self) -> str:
        return f"{self.url}/mcp"


@contextlib.asynccontextmanager
async def serve(app: Any, **config: Any) -> AsyncIterator[str]:
    """Run `app` under uvicorn (lifespan on) on a free loopback port; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # listening before uvicorn starts: clients connect at once and wait for the lifespan
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    options = {"lifespan": "on", "log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 3}
    server = uvicorn.Server(uvicorn.Config(app, **{**options, **config}))
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        try:
            yield url
        finally:
            server.should_exit = True
    sock.close()


def calc_gateway(extra: dict[str, Any] | None = None, *, peer: Peer | None = None) -> Gateway:
    """A gateway whose upstreams are the repo's calc SDK server (and a steerable `Peer`), in this process."""
    factories: dict[str, Callable[[], Any]] = {"calc": lambda: MemoryClientTransport(build_calc("calc"))}
    if peer is not None:
        factories["peer"] = lambda: MemoryClientTransport(peer.build())
    servers: dict[str, Any] = {name: {"transport": "stdio", "command": "in-memory"} for name in factories}
    if peer is not None:
        # Handshake era: a 2026-07-28 SDK server on a stream transport does not act on `notifications/cancelled`.
        servers["peer"]["protocol"] = "legacy"
    config = parse_config({"servers": servers, **(extra or {})})
    return Gateway(config, transports=factories)


@contextlib.asynccontextmanager
async def running(
    extra: dict[str, Any] | None = None,
    *,
    gateway: Gateway | None = None,
    peer: Peer | None = None,
    **create: Any,
) -> AsyncIterator[Running]:
    """Bastion's app (no auth) in front of in-process SDK servers, served on a real socket."""
    gateway = gateway or calc_gateway(extra, peer=peer)
    recorder = Recorder()
    gateway.notice_observers.append(recorder)
    gateway.observers.append(recorder)
    async with serve(create_app(gateway, **create)) as url:
        yield Running(url=url, gateway=gateway, recorder=recorder)


def body(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message)


def request(request_id: Any, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def post_headers(session_id: str | None = None, version: str | None = None, **extra: str) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": ACCEPT}
    if session_id is not None:
        headers["mcp-session-id"] = session_id
    if version is not None:
        headers["mcp-protocol-version"] = version
    headers.update(extra)
    return headers


async def initialize(http: httpx.AsyncClient, url: str, version: str = "2025-11-25") -> str:
    """A handshake-era session (initialize + initialized); returns its id."""
    response = await http.post(
        url,
        content=body(request(0, "initialize", {**INIT_PARAMS, "protocolVersion": version})),
        headers=post_headers(),
    )
    assert response.status_code == 200, response.text
    session_id = response.headers["mcp-session-id"]
    done = await http.post(
        url,
        content=body({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        headers=post_headers(session_id, version),
    )
    assert done.status_code == 202
    return session_id


def modern_params(params: dict[str, Any] | None = None, version: str = MODERN) -> dict[str, Any]:
    meta = {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "1"},
    }
    return {**(params or {}), "_meta": meta}


def sse_events(text: str) -> list[dict[str, str]]:
    """Parse an SSE body into events (`id`, `event`, `data`); comments are dropped."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            event[key] = value[1:] if value.startswith(" ") else value
        if event:
            events.append(event)
    return events


class SseReader:
    """Reads data-carrying events from a streaming SSE response, across several calls."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.aiter_text()
        self._buffer = ""

    async def take(self, count: int) -> list[dict[str, str]]:
        events: list[dict[str, str]] = []
        while len(events) < count:
            while "\n\n" not in self._buffer:
                self._buffer += await anext(self._chunks)
            block, self._buffer = self._buffer.split("\n\n", 1)
            events += [e for e in sse_events(block + "\n\n") if e.get("data")]
        return events


async def read_events(response: httpx.Response, count: int) -> list[dict[str, str]]:
    """Read `count` data-carrying events from a streaming SSE response (once per response)."""
    return await SseReader(response).take(count)


@dataclass
class Served:
    """`bastion serve` running as a child process."""

    url: str
    process: subprocess.Popen[bytes]

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read().decode(errors="replace")


@contextlib.asynccontextmanager
async def bastion_serve(config: dict[str, Any], workdir: Path) -> AsyncIterator[Served]:
    """`bastion serve` on a free port with `config` (written to `workdir`, which is also its working directory)."""
    path = workdir / "bastion.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli", "serve", "--config", str(path), "--port", str(port)],
        env=bastion_env(),
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            with anyio.fail_after(90):
                while True:
                    if process.poll() is not None:
                        raise RuntimeError(f"bastion serve exited: {process.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get(f"{url}/healthz")).status_code == 200:
                            break
                    await anyio.sleep(0.1)  # polling a child process: nothing else tells us it listens
                # /healthz answers at once; MCP paths wait until the upstreams connected (or timed out).
                await http.get(f"{url}/mcp", timeout=90)
        yield Served(url=url, process=process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stderr is not None:
            process.stderr.close()
