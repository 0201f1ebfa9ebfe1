"""`bastion guard check`: JSON Lines in, one decision per line out, through the real command line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from bastion.app.commands.guard import check_stream, judge_line
from bastion.guard.engine import Guard
from tests.guard import tokens


def test_guard_check_round_trips_json_lines(tmp_path: Path) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text("guardrails:\n  actions:\n    pii: {response: redact}\n", encoding="utf-8")
    key = tokens.aws_key()
    lines = [
        {"id": 1, "direction": "response", "server": "s", "tool": "t", "payload": {"text": f"k={key}"}},
        {"id": "two", "direction": "request", "payload": {"path": "../../../../etc/shadow"}},
        {"id": 3, "direction": "response", "payload": {"text": "mail ann@example.org"}},
        {"id": 4, "direction": "response", "payload": "nothing to see"},
    ]
    stdin = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n"
    proc = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "guard", "check", "--config", str(config)],
        input=stdin.encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr.decode()
    out = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [o["id"] for o in out] == [1, "two", 3, 4, None]
    assert [o["action"] for o in out] == ["redact", "block", "redact", "allow", "block"]
    assert out[0]["payload"] == {"text": "k=[REDACTED:aws_access_key]"}
    assert out[0]["findings"][0] | {"severity": "x"} == {
        "detector": "secrets",
        "type": "aws_access_key",
        "severity": "x",
        "path": "$.text",
        "action": "redact",
    }
    assert out[2]["payload"] == {"text": "mail [REDACTED:email]"}
    assert key not in proc.stdout.decode()


def test_an_all_clean_stream_exits_zero_and_streams_in_order() -> None:
    guard = Guard()
    source = io.BytesIO(b'{"id": 1, "payload": "a"}\n\n{"id": 2, "payload": {"x": "b"}}\n')
    sink = io.BytesIO()
    lines, size, worst = check_stream(guard, source, sink)
    assert (lines, worst.value) == (2, "allow") and size > 0
    assert [json.loads(x)["id"] for x in sink.getvalue().splitlines()] == [1, 2]


def test_a_line_that_is_not_an_object_fails_closed() -> None:
    out, action = judge_line(Guard(), b"[1, 2]")
    assert out["action"] == "block" and action.value == "block" and out["id"] is None
