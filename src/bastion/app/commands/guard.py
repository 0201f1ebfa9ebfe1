"""`bastion guard check`: run the guardrails over JSON Lines from stdin, one decision per line on stdout.

Input, one object per line:
    {"id": ..., "direction": "request" | "response" | "tool", "server": ..., "tool": ..., "schema": {...},
     "payload": <any JSON>}
Output, one object per input line, in order:
    {"id": ..., "action": "allow" | "flag" | "redact" | "ask" | "block",
     "findings": [{"detector", "type", "severity", "path"}], "payload": <after redaction>}

Streaming: one line is read, judged and written at a time, so memory stays constant and the command doubles as a
throughput test on large files (`--stats` prints lines, bytes and MB/s to stderr). A line that is not a JSON object
gets `{"id": null, "action": "block", "error": "..."}`: the command fails closed like the gateway.

Exit status: 0 every line allowed, 1 something was flagged, redacted, held or blocked, 2 invalid config.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import IO, Any

import orjson

from bastion.errors import ConfigError
from bastion.guard.actions import Action
from bastion.guard.config import GuardrailsConfig
from bastion.guard.detector import Direction
from bastion.guard.engine import Guard


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `guard check` to the `bastion` command line."""
    guard = subparsers.add_parser("guard", help="run the guardrails outside the gateway")
    commands = guard.add_subparsers(dest="guard_command", required=True)
    check = commands.add_parser("check", help="judge JSON Lines from stdin, one decision per line on stdout")
    check.add_argument("--config", required=True, help="bastion.yaml (its `guardrails:` section is used)")
    check.add_argument("--stats", action="store_true", help="print lines, bytes and throughput to stderr")
    check.set_defaults(handler=run_check)


def load_guardrails(path: str) -> GuardrailsConfig:
    """The `guardrails` section of a bastion.yaml."""
    from bastion.config import load_config

    config = load_config(path)
    section: GuardrailsConfig = config.guardrails
    return section


def judge_line(guard: Guard, line: bytes) -> tuple[dict[str, Any], Action]:
    """One input line to one output object (and its action, for the exit status)."""
    try:
        item = orjson.loads(line)
        if not isinstance(item, dict):
            raise ValueError("each line must be a JSON object")
        direction = Direction(item.get("direction", "response"))
        schema = item.get("schema")
        result = guard.inspect(
            direction,
            item.get("payload"),
            server=item.get("server"),
            tool=item.get("tool"),
            schema=schema if isinstance(schema, dict) else None,
        )
    except (orjson.JSONDecodeError, ValueError) as exc:
        reason = "invalid JSON" if isinstance(exc, orjson.JSONDecodeError) else str(exc)
        return {"id": None, "action": Action.BLOCK.value, "findings": [], "error": reason}, Action.BLOCK
    findings = [
        {
            "detector": f.detector,
            "type": f.type,
            "severity": str(f.severity),
            "path": f.path,
            "action": f.action,
        }
        for f in result.findings
    ]
    out = {
        "id": item.get("id"),
        "action": result.action.value,
        "findings": findings,
        "payload": result.payload,
    }
    return out, result.action


def check_stream(guard: Guard, source: IO[bytes], sink: IO[bytes]) -> tuple[int, int, Action]:
    """Judge every line of `source` into `sink`; returns (lines, bytes, strongest action)."""
    lines = size = 0
    worst = Action.ALLOW
    for raw in source:
        if not raw.strip():
            continue
        lines += 1
        size += len(raw)
        out, action = judge_line(guard, raw)
        if action.rank > worst.rank:
            worst = action
        sink.write(orjson.dumps(out, option=orjson.OPT_APPEND_NEWLINE))
    sink.flush()
    return lines, size, worst


def run_check(args: argparse.Namespace) -> int:
    """Handler of `bastion guard check`."""
    try:
        guard = Guard(load_guardrails(args.config))
    except ConfigError as exc:
        print(f"invalid config: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    lines, size, worst = check_stream(guard, sys.stdin.buffer, sys.stdout.buffer)
    if args.stats:
        seconds = max(time.perf_counter() - started, 1e-9)
        print(
            f"{lines} lines, {size} bytes in {seconds:.3f}s: {size / seconds / 1e6:.1f} MB/s "
            f"({guard.backend} backend)",
            file=sys.stderr,
        )
    return 0 if worst is Action.ALLOW else 1
