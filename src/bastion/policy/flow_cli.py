"""`bastion policy test --history`: the flow part of the report (labels, replayed taint, verdict and chain)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bastion.guard.engine import Guard
from bastion.policy.engine import PolicyEngine
from bastion.policy.history import read_history, replay
from bastion.policy.labels import references_from_servers
from bastion.types import Principal


def _document(config_path: str) -> dict[str, Any]:
    loaded = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def _guard(document: dict[str, Any]) -> Guard | None:
    """The config's guardrails, for history entries that carry a `result` (a bare policy file has none)."""
    if "policy" not in document:
        return None
    from bastion.guard.config import GuardrailsConfig
    from bastion.guard.setup import compiled_guard

    return compiled_guard(GuardrailsConfig.model_validate(document.get("guardrails") or {}))


def explain_flow(
    engine: PolicyEngine,
    config_path: str,
    history_path: str,
    principal: Principal,
    server: str,
    tool: str,
    arguments: dict[str, Any],
) -> dict[str, Any]:
    """Replay the history and judge the call; the result is JSON-able and holds no value from the history."""
    document = _document(config_path)
    entries = read_history(history_path)
    references = references_from_servers(document.get("servers") or {}) if "policy" in document else {}
    needs_guard = any("result" in e and "findings" not in e for e in entries)
    flow = engine.flow
    taint = replay(
        entries,
        flow,
        references=references,
        guard=_guard(document) if needs_guard else None,
        principal=principal.name,
    )
    labels = flow.labels(references).of(server, tool)
    report: dict[str, Any] = {
        "enabled": flow.enabled,
        "labels": list(labels),
        "taint": [m.to_dict() for m in taint.marks],
        "fingerprints": len(taint.fingerprints),
        "action": "allow",
        "rule": "",
        "explanation": "no flow rule holds",
        "chain": [],
    }
    if not flow.enabled:
        report["explanation"] = "policy.flow is off"
        return report
    verdict = flow.judge(
        server=server,
        tool=tool,
        labels=labels,
        args=arguments,
        principal=engine.principal_doc(principal),
        taint=taint,
    )
    if verdict is not None:
        report.update(
            action=verdict.action,
            rule=verdict.rule,
            explanation=verdict.explanation,
            chain=[m.to_dict() for m in verdict.chain],
        )
    return report
