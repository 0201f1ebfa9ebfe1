"""Detection quality of every detector on the labelled corpora: precision, recall and F1 per detector, file and
category, and the false positives on the benign rows.

Run: `make eval`, or `.venv/bin/python bench/eval_guardrails.py [--fp N] [--only secrets,pii]`.
Corpora: `$BASTION_CORPORA`, else `../shared/corpora` next to the repository.

Each row goes through a real `Guard` (the one-pass engine, not the detector alone) with only the evaluated
detector switched on and set to `flag`, so any finding counts as "fired". Context per corpus:
- secrets, pii, injection: the row is the text of a tool result (`response`);
- tool poisoning: the row is the description of a tool definition (`tool`);
- dangerous arguments: the row is the value of an argument `input` of a tool `tool` (`request`), i.e. with no
  hint from the argument or tool name.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.guard.config import DETECTOR_NAMES, GuardrailsConfig
from bastion.guard.engine import Guard, GuardResult

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
CORPORA = Path(os.environ.get("BASTION_CORPORA", ROOT.parent / "shared" / "corpora"))

FILES: dict[str, tuple[str, str]] = {
    "secrets_gitleaks.jsonl": ("secrets", "response"),
    "pii_presidio_generated.jsonl": ("pii", "response"),
    "inj_bipia.jsonl": ("injection", "response"),
    "inj_agentdojo.jsonl": ("injection", "response"),
    "tool_poisoning.jsonl": ("poisoning", "tool"),
    "dangerous_args.jsonl": ("arguments", "request"),
}

CLASSIFIER_FILES: dict[str, str] = {
    "inj_bipia.jsonl": "response",
    "inj_agentdojo.jsonl": "response",
    "tool_poisoning.jsonl": "tool",
}
"""The learned `classifier` detector on the tuning corpora (it is also trained on them: these are tuning figures)."""

PII_IN_SCOPE = {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS"}
"""Presidio span types a regex+validator detector can find. Names, places, organisations, dates, ages, titles and
nationalities need a language model; driver licences have no checksum and no common format."""
PII_WITH_ADDRESSES = PII_IN_SCOPE | {"STREET_ADDRESS"}


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, gold: bool, fired: bool) -> None:
        if gold and fired:
            self.tp += 1
        elif gold:
            self.fn += 1
        elif fired:
            self.fp += 1
        else:
            self.tn += 1

    def merge(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.tn += other.tn

    def prf(self) -> tuple[float, float, float]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f

    def line(self) -> str:
        p, r, f = self.prf()
        fpr = self.fp / (self.fp + self.tn) if self.fp + self.tn else 0.0
        return (
            f"P={p:.3f} R={r:.3f} F1={f:.3f} FPR={fpr:.3f}  "
            f"(tp={self.tp} fp={self.fp} fn={self.fn} tn={self.tn})"
        )


@dataclass
class FileReport:
    name: str
    detector: str
    total: Counts = field(default_factory=Counts)
    categories: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    false_positives: list[tuple[str, str, str]] = field(default_factory=list)
    misses: list[tuple[str, str]] = field(default_factory=list)
    extra: dict[str, Counts] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def rows(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def guard_for(detector: str) -> Guard:
    actions: dict[str, Any] = {name: "off" for name in DETECTOR_NAMES}
    actions[detector] = "flag"
    # Type-level default keys (e.g. `pii.credit_card`) would otherwise keep their defaults.
    for key in GuardrailsConfig().actions:
        if "." in key:
            actions[key] = "flag" if key.startswith(f"{detector}.") else "off"
    extra: dict[str, Any] = {}
    if detector == "pii":
        extra["pii"] = (
            {"types": os.environ.get("BASTION_EVAL_PII_TYPES", "").split(",")}
            if os.environ.get("BASTION_EVAL_PII_TYPES")
            else {}
        )
    return Guard(GuardrailsConfig.model_validate({"actions": actions, **extra}))


def inspect_row(guard: Guard, detector: str, direction: str, text: str) -> GuardResult:
    if direction == "tool":
        payload: Any = {"name": "tool", "description": text, "inputSchema": {"type": "object"}}
        return guard.inspect(direction, payload, server="eval", tool="tool")
    if detector == "arguments":
        return guard.inspect(direction, {"input": text}, server="eval", tool="tool")
    return guard.inspect(direction, text, server="eval")


def evaluate(name: str, detector: str, direction: str, guard: Guard) -> FileReport:
    report = FileReport(name, detector)
    pii_scopes = {"in_scope": PII_IN_SCOPE, "with_addresses": PII_WITH_ADDRESSES}
    if detector == "pii":
        report.extra = {scope: Counts() for scope in pii_scopes}
        span_hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    started = time.perf_counter()
    for row in rows(CORPORA / name):
        result = inspect_row(guard, detector, direction, row["text"])
        fired = bool(result.findings)
        gold = bool(row["label"])
        report.total.add(gold, fired)
        report.categories[row["category"]].add(gold, fired)
        if fired and not gold:
            kinds = ",".join(sorted({f.type for f in result.findings}))
            report.false_positives.append((row["id"], kinds, row["text"]))
        if gold and not fired:
            report.misses.append((row["id"], row["text"]))
        if detector == "pii":
            spans = row.get("spans", [])
            for scope, types in pii_scopes.items():
                report.extra[scope].add(any(s["type"] in types for s in spans), fired)
            for s in spans:
                hit = any(f.start < s["end"] and s["start"] < f.end for f in result.findings)
                span_hits[s["type"]][0] += int(hit)
                span_hits[s["type"]][1] += 1
    report.seconds = time.perf_counter() - started
    if detector == "pii":
        for type_, (hit, total) in sorted(span_hits.items()):
            report.notes.append(f"span recall {type_:<18} {hit}/{total} = {hit / total:.3f}")
    return report


def _heldapart(only: set[str], guards: dict[str, Guard]) -> None:
    """Per detector: hand-written held-out cases, leave-source-out figures and benign false positives."""
    import anyio

    from eval_classifier import _list_tools, _stdlib
    from eval_heldapart import benign_sets, heldapart_rows, report_cases, report_heldapart

    rows, note = heldapart_rows()
    tools = [] if os.environ.get("BASTION_EVAL_NO_PEERS") else anyio.run(_list_tools)
    benign = benign_sets(rows, tools, _stdlib())
    default = Guard()
    for detector in ("injection", "poisoning", "secrets", "pii", "classifier"):
        if only and detector not in only:
            continue
        print(f"\n== {detector}: held apart (data the detector was not written or trained against)")
        if note:
            print(f"   note: {note}")
        guard = guards.setdefault(detector, guard_for(detector))
        report_cases(detector, guard)
        report_heldapart(detector, guard, default, rows, benign)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp", type=int, default=15, help="false positives to print per file")
    parser.add_argument("--misses", type=int, default=0, help="missed positives to print per file")
    parser.add_argument("--only", default="", help="comma-separated detectors to evaluate")
    parser.add_argument("--categories", action="store_true", help="print every category, not only the worst")
    parser.add_argument("--no-heldapart", action="store_true", help="tuning-set figures only")
    args = parser.parse_args()
    if not CORPORA.is_dir():
        print(f"corpora not found at {CORPORA} (set BASTION_CORPORA)", file=sys.stderr)
        return 2
    only = {d for d in args.only.split(",") if d}
    guards: dict[str, Guard] = {}
    per_detector: dict[str, Counts] = defaultdict(Counts)
    for name, (detector, direction) in FILES.items():
        if only and detector not in only:
            continue
        if not (CORPORA / name).exists():
            print(f"-- {name}: missing, skipped")
            continue
        guard = guards.setdefault(detector, guard_for(detector))
        report = evaluate(name, detector, direction, guard)
        per_detector[detector].merge(report.total)
        print(f"\n== {name}  [{detector}, {direction}]  {report.seconds:.2f}s")
        print(f"   all rows          {report.total.line()}")
        for scope, counts in report.extra.items():
            print(f"   labels={scope:<10} {counts.line()}")
        for note in report.notes:
            print(f"   {note}")
        cats = sorted(
            report.categories.items(), key=lambda kv: kv[1].prf()[1] if kv[1].tp + kv[1].fn else 2.0
        )
        shown = 0
        for category, counts in cats:
            positives = counts.tp + counts.fn
            negatives = counts.fp + counts.tn
            bad = (positives and counts.fn) or (negatives and counts.fp)
            if not args.categories and not bad:
                continue
            shown += 1
            if positives:
                print(f"   cat {category[:52]:<52} recall {counts.tp}/{positives}")
            if negatives:
                print(f"   cat {category[:52]:<52} false positives {counts.fp}/{negatives}")
        if not shown:
            print("   (every category clean)")
        for row_id, kinds, text in report.false_positives[: args.fp]:
            print(f"   FP {row_id} [{kinds}] {text[:110]!r}")
        for row_id, text in report.misses[: args.misses]:
            print(f"   MISS {row_id} {text[:140]!r}")
    if not args.no_heldapart:
        _heldapart(only, guards)
    if not only or "classifier" in only:
        from eval_classifier import report_classifier

        for name, direction in CLASSIFIER_FILES.items():
            guard = guards.setdefault("classifier", guard_for("classifier"))
            report = evaluate(name, "classifier", direction, guard)
            per_detector["classifier"].merge(report.total)
            print(f"\n== {name}  [classifier, {direction}]  {report.seconds:.2f}s  (tuning set)")
            print(f"   all rows          {report.total.line()}")
        report_classifier(guard_for("classifier"))
    print("\n== per detector")
    for detector, counts in per_detector.items():
        print(f"   {detector:<10} {counts.line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
