"""Hostile input on a real `bastion stdio` process: each bad line gets the right JSON-RPC error (id null when the
line cannot be trusted), is audited as a protocol error, and the gateway goes on serving; at EOF it exits cleanly."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from tests.peers import calc_stdio
from tests.reliability.conftest import (
    StdioGateway,
    alive,
    call,
    descendants,
    kill_all,
    wait_for,
    write_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

MAX_BODY = 64 * 1024


def _deep(levels: int) -> bytes:
    return b'{"jsonrpc":"2.0","id":5,"method":"ping","params":{"x":' + b"[" * levels + b"]" * levels + b"}}"


HOSTILE = [
    ("malformed JSON", b'{"jsonrpc": "2.0", "id": 1, "method": ', -32700, "parse_error"),
    ("invalid UTF-8", b'{"jsonrpc":"2.0","id":1,"method":"p\xff\xfeing"}', -32700, "parse_error"),
    ("not an object", b'"hello"', -32600, "invalid_request"),
    ("a batch", b'[{"jsonrpc":"2.0","id":1,"method":"ping"}]', -32600, "invalid_request"),
    ("wrong jsonrpc version", b'{"jsonrpc":"1.0","id":1,"method":"ping"}', -32600, "invalid_request"),
    ("id of the wrong type", b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', -32600, "invalid_request"),
    (
        "params of the wrong type",
        b'{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}',
        -32600,
        "invalid_request",
    ),
    ("nesting beyond max_depth", _deep(40), -32600, "too_large"),
    ("nesting beyond the parser", _deep(5000), -32700, "parse_error"),
    (
        "a line over max_body_bytes",
        b'{"jsonrpc":"2.0","id":6,"method":"ping","params":{"pad":"' + b"x" * (4 * MAX_BODY) + b'"}}',
        -32600,
        "too_large",
    ),
]


def _protocol_errors(db: Path) -> list[str]:
    connection = sqlite3.connect(db)
    try:
        rows = connection.execute(
            "SELECT json_extract(content, '$.detail.reason') FROM audit_events WHERE kind = 'protocol_error'"
        ).fetchall()
    finally:
        connection.close()
    return [r[0] for r in rows]


async def test_bastion_stdio_answers_every_hostile_line_and_keeps_serving(tmp_path):
    config = write_config(
        tmp_path,
        {
            "servers": {"calc": calc_stdio()},
            "limits": {"max_body_bytes": MAX_BODY, "max_depth": 16},
            "state": {"path": str(tmp_path / "state.db")},
            "audit": {"sinks": [{"type": "sqlite", "path": str(tmp_path / "audit.db")}]},
        },
    )
    gateway = await StdioGateway.start(config, tmp_path / "stdio.log")
    below: list[int] = []
    try:
        # Before initialize: only ping is served; anything else is refused with its own id.
        await gateway.send(call(1, "calc__add", {"a": 1, "b": 1}))
        early = await gateway.answer(1, 60)
        assert early["error"]["code"] == -32600
        await gateway.send({"jsonrpc": "2.0", "id": 2, "method": "ping"})
        assert (await gateway.answer(2))["result"] == {}
        await gateway.initialize()
        below = descendants(gateway.process.pid)

        for case, line, code, reason in HOSTILE:
            await gateway.write(line + b"\n")
            reply = await gateway.receive()
            assert reply["id"] is None, case
            assert reply["error"]["code"] == code and reply["error"]["data"]["reason"] == reason, case

        await gateway.write(b"\n   \n\t\n")  # blank lines are no messages: nothing comes back
        await gateway.send({"jsonrpc": "2.0", "id": "ghost", "result": {}})  # a response nobody asked for
        await gateway.send({"jsonrpc": "2.0", "id": 7, "method": "no/such/method"})
        unknown = await gateway.receive()  # the very next line: blank lines and the ghost got no answer
        assert unknown["id"] == 7 and unknown["error"]["code"] == -32601
        await gateway.send(call(8, "calc__add", {"a": 20, "b": 22}))
        assert (await gateway.answer(8))["result"]["structuredContent"] == {"result": 42}

        assert gateway.process.stdin is not None
        gateway.process.stdin.close()
        with anyio.fail_after(30):
            assert await gateway.process.wait() == 0
        await wait_for(lambda: not any(alive(p) for p in below), 10)
    finally:
        await gateway.close()
        kill_all([p for p in below if alive(p)])
    audited = _protocol_errors(tmp_path / "audit.db")
    assert len(audited) == len(HOSTILE)
    assert sorted(audited) == sorted(reason for _case, _line, _code, reason in HOSTILE)
