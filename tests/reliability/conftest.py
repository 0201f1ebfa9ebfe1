"""Helpers for the fault-injection suite: the faulty upstream, its event record, real gateway processes, /proc."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import yaml

from bastion.config import parse_config
from bastion.core.gateway import Gateway
from tests.peers import PYTHON, ROOT, bastion_env, free_port

FAULTY = ROOT / "tests/servers/faulty.py"
QUIET: dict[str, Any] = {"guardrails": {"enabled": False}}
"""Config every test here starts from: the guardrails are another colleague's moving part."""


def faulty_stdio(record: Path | None = None, **extra: Any) -> dict[str, Any]:
    """Config of tests/servers/faulty.py as a stdio upstream, recording its events to `record`."""
    args = [str(FAULTY), "stdio"] + (["--record", str(record)] if record is not None else [])
    # One shared connection: these tests are about supervising it (isolation has its own tests in tests/upstream).
    config = {"transport": "stdio", "command": PYTHON, "args": args, "connect_timeout_seconds": 20}
    return {**config, "isolation": "shared", **extra}


def events(record: Path) -> list[dict[str, Any]]:
    """What the faulty server recorded so far."""
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.endswith("}")]


async def wait_for(predicate: Callable[[], Any], seconds: float = 20, what: str = "condition") -> Any:
    """Poll `predicate` (a file, /proc or a gateway attribute: nothing to await) until truthy; bounded."""
    with anyio.fail_after(seconds):
        while not (value := predicate()):
            await anyio.sleep(0.02)
    return value


async def cancelled_after_call(record: Path, tool: str, seconds: float = 20) -> dict[str, Any]:
    """Wait until the upstream recorded a `notifications/cancelled` for its (last) call of `tool`."""

    def found() -> dict[str, Any] | None:
        seen = events(record)
        ids = [e["id"] for e in seen if e["event"] == "call" and e["tool"] == tool]
        hits = [e for e in seen if e["event"] == "cancelled" and ids and e["requestId"] == ids[-1]]
        return hits[-1] if hits else None

    hit: dict[str, Any] = await wait_for(found, seconds, f"cancellation of {tool}")
    return hit


@contextlib.asynccontextmanager
async def gateway_with(servers: dict[str, Any], **extra: Any) -> AsyncIterator[Gateway]:
    """An in-process gateway (real upstream processes), closed afterwards."""
    gateway = Gateway(parse_config({"servers": servers, **QUIET, **extra}))
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.aclose()


def upstream_pid(gateway: Gateway, name: str) -> int | None:
    """The child process of a stdio upstream while it runs."""
    transport = gateway.upstreams[name]._transport
    pid = getattr(transport, "pid", None)
    return pid if isinstance(pid, int) else None


# -- processes -----------------------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Direct children of `pid` (from /proc)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children...)."""
    out: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo += children(child)
    return out


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[1].split()[0] != "Z"


def rss_kib(pid: int) -> int:
    """Resident memory of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def kill_all(pids: list[int]) -> None:
    """Last-resort cleanup of processes a test started (by pid)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def write_config(workdir: Path, config: dict[str, Any]) -> Path:
    path = workdir / "bastion.yaml"
    path.write_text(yaml.safe_dump({**QUIET, **config}))
    return path


class Served:
    """`bastion serve` as a child process on a free loopback port."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (workdir / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "bastion.cli", "serve", "--config", str(config), "--port", str(self.port)],
            env=bastion_env(),
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    async def ready(self, seconds: float = 90) -> None:
        async with httpx.AsyncClient() as http:
            with anyio.fail_after(seconds):
                while True:
                    assert self.process.poll() is None, "bastion serve exited"
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get(f"{self.url}/readyz")).status_code == 200:
                            return
                    await anyio.sleep(0.1)  # a child process: nothing else says it listens

    async def wait(self, seconds: float = 60) -> int:
        with anyio.fail_after(seconds):
            while self.process.poll() is None:
                await anyio.sleep(0.05)
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log.close()


@contextlib.asynccontextmanager
async def serving(config: Path, workdir: Path) -> AsyncIterator[Served]:
    served = Served(config, workdir)
    below: list[int] = []
    try:
        await served.ready()
        below = descendants(served.process.pid)
        yield served
    finally:
        below += descendants(served.process.pid)
        served.close()
        with contextlib.suppress(TimeoutError):
            await wait_for(lambda: not any(alive(p) for p in below), 10)
        kill_all([p for p in below if alive(p)])


def audit_verify(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "bastion.cli", "audit", "verify", "--all-sinks", "--config", str(config)],
        capture_output=True,
        text=True,
        env=bastion_env(),
        timeout=60,
        check=False,
        cwd=config.parent,
    )


class StdioGateway:
    """`bastion stdio` as a child process, driven with raw bytes (lines in, JSON lines out)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, config: Path, log: Path) -> StdioGateway:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bastion.cli",
            "stdio",
            "--config",
            str(config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log.open("ab"),
            env=bastion_env(),
            cwd=config.parent,
            limit=64 * 1024 * 1024,
        )
        return cls(process)

    async def write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(data)
        await self.process.stdin.drain()

    async def send(self, message: dict[str, Any]) -> None:
        await self.write(json.dumps(message).encode() + b"\n")

    async def receive(self, seconds: float = 30) -> dict[str, Any]:
        assert self.process.stdout is not None
        with anyio.fail_after(seconds):
            line = await self.process.stdout.readline()
        assert line.endswith(b"\n"), f"gateway closed its stdout: {line[:200]!r}"
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    async def answer(self, request_id: Any, seconds: float = 30) -> dict[str, Any]:
        """The response to `request_id` (notifications before it are skipped)."""
        with anyio.fail_after(seconds):
            while (reply := await self.receive(seconds)).get("id") != request_id or "method" in reply:
                pass
        return reply

    async def initialize(self) -> dict[str, Any]:
        params = {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "reliability", "version": "1"},
        }
        await self.send({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": params})
        reply = await self.answer("init", 60)
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return reply

    async def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        await self.process.wait()


def call(request_id: Any, tool: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments or {}},
    }
