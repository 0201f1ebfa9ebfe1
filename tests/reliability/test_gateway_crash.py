"""`bastion serve` SIGKILLed in the middle of load from many HTTP sessions, then restarted on the same audit store:
every reply a client got was audited first, the chain verifies, the orphaned upstream children exit on their own
(EOF on stdin), and the restarted gateway serves and verifies again."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
from pathlib import Path

import anyio
import httpx
import pytest

from tests.peers import calc_stdio
from tests.reliability.conftest import (
    alive,
    audit_verify,
    call,
    descendants,
    kill_all,
    serving,
    wait_for,
    write_config,
)
from tests.server.conftest import body, initialize, post_headers

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

SESSIONS = 16
KILL_AFTER = 300
"""Replies received (over all sessions) before the SIGKILL."""


def _audited(tmp_path: Path) -> set[str]:
    db = sqlite3.connect(tmp_path / "audit.db")
    try:
        rows = db.execute(
            "SELECT json_extract(content, '$.request_id') FROM audit_events "
            "WHERE kind = 'exchange' AND method = 'tools/call'"
        ).fetchall()
    finally:
        db.close()
    return {str(r[0]) for r in rows}


async def test_a_sigkilled_serve_under_load_restarts_on_the_same_audit_store_and_verifies(tmp_path):
    config = write_config(
        tmp_path,
        {
            "servers": {"calc": calc_stdio()},
            "state": {"path": str(tmp_path / "state.db")},
            "cluster": {"replica_id": "crash-serve"},
            "audit": {"sinks": [{"type": "sqlite", "path": str(tmp_path / "audit.db")}]},
        },
    )
    received: set[str] = set()
    orphans: list[int] = []
    try:
        async with serving(config, tmp_path) as served:
            url = f"{served.url}/mcp"
            orphans = descendants(served.process.pid)
            killed = anyio.Event()

            async def session(number: int) -> None:
                async with httpx.AsyncClient(timeout=30) as http:
                    sid = await initialize(http, url)
                    headers = post_headers(sid, "2025-11-25")
                    i = 0
                    while not killed.is_set():
                        i += 1
                        request_id = f"s{number}-{i}"
                        try:
                            reply = await http.post(
                                url,
                                content=body(call(request_id, "calc__add", {"a": i, "b": 1})),
                                headers=headers,
                            )
                        except httpx.TransportError:
                            return  # the gateway is gone
                        if reply.status_code == 200 and "result" in reply.json():
                            received.add(request_id)
                        if len(received) >= KILL_AFTER and not killed.is_set():
                            served.process.send_signal(signal.SIGKILL)
                            killed.set()

            with anyio.fail_after(120):
                async with anyio.create_task_group() as tg:
                    for number in range(SESSIONS):
                        tg.start_soon(session, number)
            assert await served.wait(30) == -signal.SIGKILL
        # The killed gateway's children see EOF on stdin and exit: no orphans stay behind.
        await wait_for(lambda: not any(alive(p) for p in orphans), 20)
    finally:
        kill_all([p for p in orphans if alive(p)])
    assert len(received) >= KILL_AFTER
    assert received <= _audited(tmp_path)  # strict audit: no reply without its event
    verified = audit_verify(config)
    assert verified.returncode == 0, verified.stdout + verified.stderr

    async with serving(config, tmp_path) as served, httpx.AsyncClient(timeout=30) as http:
        url = f"{served.url}/mcp"
        sid = await initialize(http, url)
        for i in range(5):
            reply = await http.post(
                url,
                content=body(call(f"after-{i}", "calc__add", {"a": i, "b": 1})),
                headers=post_headers(sid),
            )
            assert reply.json()["result"]["structuredContent"] == {"result": i + 1}
        served.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await served.wait(30)
    assert {f"after-{i}" for i in range(5)} <= _audited(tmp_path)
    verified = audit_verify(config)
    assert verified.returncode == 0, verified.stdout + verified.stderr
