"""`bastion stdio` as a real subprocess, SIGKILLed in the middle of a burst of calls: every response the client got
has its audit event in every sink, and `bastion audit verify` passes (then again after a restart)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from tests.peers import bastion_env, calc_stdio

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

BURST = 400
WINDOW = 24
"""Calls in flight at once (below limits.max_concurrent_per_session)."""
KILL_AFTER = 80
"""Responses received before the SIGKILL."""


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "bastion.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "servers": {"calc": calc_stdio()},
                "state": {"path": str(tmp_path / "state.db")},
                "cluster": {"replica_id": "crash-test"},
                "guardrails": {"enabled": False},
                "audit": {
                    "sinks": [
                        {"type": "sqlite", "path": str(tmp_path / "audit.db")},
                        {"type": "jsonl", "path": str(tmp_path / "audit.jsonl"), "max_bytes": 65536},
                    ]
                },
            }
        )
    )
    return path


class Gateway:
    """A `bastion stdio` child driven with raw JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pending = b""

    @classmethod
    async def start(cls, config: Path, log: Path) -> Gateway:
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
            limit=16 * 1024 * 1024,
        )
        gateway = cls(process)
        await gateway.send(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "crash-test", "version": "1"},
                },
            }
        )
        with anyio.fail_after(30):
            while (reply := await gateway.receive()) is not None and reply.get("id") != 0:
                pass
        assert reply is not None and "result" in reply
        await gateway.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return gateway

    async def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()

    def call(self, i: int) -> dict[str, Any]:
        return {
            "jsonrpc": "2.0",
            "id": i,
            "method": "tools/call",
            "params": {"name": "calc__add", "arguments": {"a": i, "b": 1}},
        }

    async def receive(self) -> dict[str, Any] | None:
        """The next complete line, or None at EOF (a torn last line is not a response)."""
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line.endswith(b"\n"):
            return None
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def children(self) -> list[int]:
        pids: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            with contextlib.suppress(OSError):
                pids += [int(p) for p in (task / "children").read_text().split()]
        return pids


async def _reap(pids: list[int]) -> None:
    """The upstream children see EOF on stdin when the gateway dies; make sure they are gone."""
    with anyio.move_on_after(10):
        while any(Path(f"/proc/{p}").exists() for p in pids):
            await anyio.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _audited(tmp_path: Path) -> tuple[set[str], set[str]]:
    db = sqlite3.connect(tmp_path / "audit.db")
    try:
        rows = db.execute(
            "SELECT json_extract(content, '$.request_id') FROM audit_events WHERE kind = 'exchange' "
            "AND method = 'tools/call'"
        ).fetchall()
    finally:
        db.close()
    in_db = {r[0] for r in rows}
    in_files: set[str] = set()
    for path in tmp_path.glob("audit*.jsonl"):
        for line in path.read_bytes().splitlines():
            if line.endswith(b"}"):  # a torn last line is no event
                event = json.loads(line).get("event") or {}
                if event.get("method") == "tools/call":
                    in_files.add(event["request_id"])
    return in_db, in_files


def _verify(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bastion.cli", "audit", "verify", "--all-sinks", "--config", str(config)],
        capture_output=True,
        text=True,
        env=bastion_env(),
        timeout=60,
        check=False,
    )


async def test_a_sigkilled_gateway_never_released_a_reply_without_its_audit_event(tmp_path: Path) -> None:
    config = _config(tmp_path)
    gateway = await Gateway.start(config, tmp_path / "bastion.log")
    children = gateway.children()
    received: set[str] = set()
    sent = 0
    try:
        with anyio.fail_after(60):
            for _ in range(WINDOW):
                sent += 1
                await gateway.send(gateway.call(sent))
            while (reply := await gateway.receive()) is not None:
                if "result" in reply:
                    received.add(str(reply["id"]))
                if len(received) == KILL_AFTER:
                    gateway.process.send_signal(signal.SIGKILL)  # mid-burst: WINDOW calls are in flight
                elif len(received) < KILL_AFTER and sent < BURST:
                    sent += 1
                    with contextlib.suppress(ConnectionError):
                        await gateway.send(gateway.call(sent))
            await gateway.process.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            gateway.process.kill()
        await _reap(children)
    assert gateway.process.returncode == -signal.SIGKILL and len(received) >= KILL_AFTER
    in_db, in_files = _audited(tmp_path)
    assert received <= in_db and received <= in_files
    print(
        f"received {len(received)} of {sent} sent; audited: {len(in_db)} in SQLite, {len(in_files)} in files"
    )
    result = _verify(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "chain crash-test: OK" in result.stdout

    # A restarted gateway continues both chains where the dead one stopped.
    gateway = await Gateway.start(config, tmp_path / "bastion.log")
    children = gateway.children()
    try:
        with anyio.fail_after(30):
            for i in range(1000, 1005):
                await gateway.send(gateway.call(i))
                while (reply := await gateway.receive()) is not None and reply.get("id") != i:
                    pass
                assert reply is not None and "result" in reply
            assert gateway.process.stdin is not None
            gateway.process.stdin.close()
            await gateway.process.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            gateway.process.kill()
        await _reap(children)
    in_db, in_files = _audited(tmp_path)
    assert {str(i) for i in range(1000, 1005)} <= in_db & in_files
    result = _verify(config)
    assert result.returncode == 0, result.stdout + result.stderr
