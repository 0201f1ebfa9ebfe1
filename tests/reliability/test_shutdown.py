"""SIGTERM on `bastion serve` and `bastion stdio`: new work is refused, calls in flight finish within the grace
period (or are cancelled upstream when it runs out), the audit trail is flushed and verifies, and no child process
is left behind (checked in /proc)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.reliability.conftest import (
    StdioGateway,
    alive,
    audit_verify,
    call,
    cancelled_after_call,
    descendants,
    events,
    faulty_stdio,
    kill_all,
    serving,
    wait_for,
    write_config,
)
from tests.server.conftest import body, initialize, post_headers

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CLEAN_EXIT = (0, -signal.SIGTERM)
"""uvicorn re-raises the signal it handled once shutdown is complete, so a clean `serve` exit reads as -SIGTERM."""


def _config(tmp_path: Path, record: Path, grace: float) -> Path:
    return write_config(
        tmp_path,
        {
            "servers": {"faulty": faulty_stdio(record)},
            "limits": {"shutdown_grace_seconds": grace},
            "state": {"path": str(tmp_path / "state.db")},
            "cluster": {"replica_id": "shutdown-test"},
            "audit": {"sinks": [{"type": "sqlite", "path": str(tmp_path / "audit.db")}]},
        },
    )


def _audited_calls(tmp_path: Path) -> list[str]:
    db = sqlite3.connect(tmp_path / "audit.db")
    try:
        rows = db.execute(
            "SELECT json_extract(content, '$.outcome') FROM audit_events "
            "WHERE kind = 'exchange' AND method = 'tools/call'"
        ).fetchall()
    finally:
        db.close()
    return [r[0] for r in rows]


def _called(record: Path) -> bool:
    return any(e["event"] == "call" and e["tool"] == "hang" for e in events(record))


async def test_sigterm_on_serve_drains_the_call_in_flight_flushes_audit_and_leaves_no_child(tmp_path):
    record = tmp_path / "events.jsonl"
    config = _config(tmp_path, record, grace=20)
    async with serving(config, tmp_path) as served, httpx.AsyncClient(timeout=60) as http:
        url = f"{served.url}/mcp"
        sid = await initialize(http, url)
        below = descendants(served.process.pid)
        assert below, "the faulty upstream runs as a child"
        message = call(1, "faulty__hang", {"seconds": 2})
        pending = asyncio.ensure_future(
            http.post(url, content=body(message), headers=post_headers(sid, "2025-11-25"))
        )
        await wait_for(lambda: _called(record))
        served.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            answer = await pending
        assert answer.status_code == 200
        assert answer.json()["result"]["content"][0]["text"] == "done"  # finished, not cancelled
        assert await served.wait(30) in CLEAN_EXIT
        await wait_for(lambda: not any(alive(p) for p in below), 10)
    assert not any(e["event"] in ("cancelled", "interrupted") for e in events(record))
    assert "allow" in _audited_calls(tmp_path)
    verified = audit_verify(config)
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_sigterm_on_serve_cancels_what_outlives_the_grace_period_upstream(tmp_path):
    record = tmp_path / "events.jsonl"
    config = _config(tmp_path, record, grace=1)
    async with serving(config, tmp_path) as served, httpx.AsyncClient(timeout=60) as http:
        url = f"{served.url}/mcp"
        sid = await initialize(http, url)
        below = descendants(served.process.pid)
        pending = asyncio.ensure_future(
            http.post(url, content=body(call(1, "faulty__hang")), headers=post_headers(sid, "2025-11-25"))
        )
        try:
            await wait_for(lambda: _called(record))
            served.process.send_signal(signal.SIGTERM)
            assert await served.wait(30) in CLEAN_EXIT
        finally:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        assert (await cancelled_after_call(record, "hang"))["reason"] == "cancelled by client"
        await wait_for(lambda: not any(alive(p) for p in below), 10)
    assert "cancelled" in _audited_calls(tmp_path)
    verified = audit_verify(config)
    assert verified.returncode == 0, verified.stdout + verified.stderr


async def test_sigterm_on_stdio_stops_reading_drains_the_call_and_leaves_no_child(tmp_path):
    record = tmp_path / "events.jsonl"
    config = _config(tmp_path, record, grace=20)
    gateway = await StdioGateway.start(config, tmp_path / "stdio.log")
    below: list[int] = []
    try:
        await gateway.initialize()
        below = descendants(gateway.process.pid)
        await gateway.send(call(1, "faulty__hang", {"seconds": 2}))
        await wait_for(lambda: _called(record))
        gateway.process.send_signal(signal.SIGTERM)
        reply: dict[str, Any] = await gateway.answer(1)
        assert reply["result"]["content"][0]["text"] == "done"
        with anyio.fail_after(30):
            assert await gateway.process.wait() == 0
        await wait_for(lambda: not any(alive(p) for p in below), 10)
    finally:
        await gateway.close()
        kill_all([p for p in below if alive(p)])
    assert not any(e["event"] in ("cancelled", "interrupted") for e in events(record))
    assert "allow" in _audited_calls(tmp_path)
    verified = audit_verify(config)
    assert verified.returncode == 0, verified.stdout + verified.stderr
