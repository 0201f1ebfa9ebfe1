"""Replaying a session history offline, so `bastion policy test --history` can explain a flow decision.

A history is a JSON array or JSON Lines of earlier calls, oldest first, each either
- a hand-written entry: `{"tool": "everything__get-env", "time": 1796390000, "findings": [{"detector": "pii",
  "type": "email"}], "result": {...}}` (`time`, `findings` and `result` optional; with `result` and a guard, the
  guard's own findings on it are used and its private values fingerprinted as the gateway would), or
- an audit event (`bastion audit export`): `server`, `target`, `time`, `event_id` and the response-phase findings
  of its `decisions` (audit keeps no values, so such a replay has taint but no fingerprints).

Rules:
- The replay uses the same `FlowPolicy.observe` as the flow stage; nothing here is specific to the command line.
- Values seen in `result`s are fingerprinted under a salt made for this replay and never printed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError
from bastion.guard.engine import Guard
from bastion.guard.finding import Finding
from bastion.policy.fingerprints import Fingerprint, fingerprints
from bastion.policy.flow import FlowPolicy, SessionTaint, TaintMark


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a history file (a JSON array, or one JSON object per line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", path="history") from None
    try:
        loaded = json.loads(text)
        entries = loaded if isinstance(loaded, list) else [loaded]
    except json.JSONDecodeError:
        try:
            entries = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path} is neither JSON nor JSON Lines (line {exc.lineno})", path="history"
            ) from None
    if not all(isinstance(e, dict) for e in entries):
        raise ConfigError("every history entry must be a JSON object", path="history")
    return entries


def _split(name: str) -> tuple[str, str]:
    server, _, local = name.partition("__")
    return server, local


def _findings(entry: Mapping[str, Any]) -> list[Finding]:
    if "decisions" in entry:
        listed = [
            f
            for d in entry.get("decisions") or ()
            if isinstance(d, dict) and d.get("phase") == "response" and d.get("stage") != "flow"
            for f in d.get("findings") or ()
        ]
    else:
        listed = list(entry.get("findings") or ())
    found: list[Finding] = []
    for item in listed:
        if isinstance(item, dict) and item.get("detector") and item.get("type"):
            found.append(
                Finding(
                    detector=str(item["detector"]),
                    type=str(item["type"]),
                    path=str(item.get("path", "$")),
                    start=int(item.get("start", -1)),
                    end=int(item.get("end", -1)),
                    action=str(item.get("action", "flag")),
                )
            )
    return found


def replay(
    entries: Sequence[Mapping[str, Any]],
    flow: FlowPolicy,
    *,
    references: Mapping[str, str],
    guard: Guard | None = None,
    principal: str = "",
) -> SessionTaint:
    """The taint a session with this history would have."""
    labels = flow.labels(references)
    salt = os.urandom(16)
    marks: list[TaintMark] = []
    prints: dict[Fingerprint, str] = {}
    for index, entry in enumerate(entries):
        if "decisions" in entry:
            server, tool = str(entry.get("server", "")), str(entry.get("target", ""))
            event = str(entry.get("event_id", f"history[{index}]"))
        else:
            server, tool = _split(str(entry.get("tool", "")))
            event = str(entry.get("event", f"history[{index}]"))
        result = entry.get("result")
        findings = _findings(entry)
        if result is not None and guard is not None and "findings" not in entry:
            findings = list(guard.inspect("response", result, server=server, tool=tool).findings)
        observed = flow.observe(
            tool=f"{server}__{tool}",
            labels=labels.of(server, tool),
            findings=findings,
            raw=result,
            sent=entry.get("arguments"),
            event=event,
            principal=principal,
            now=float(entry.get("time", 0.0)),
        )
        marks.extend(observed.marks)
        for value in observed.values:
            prints.update(dict.fromkeys(fingerprints(value, salt), event))
    return SessionTaint(marks=tuple(marks), fingerprints=prints, salt=salt)
