"""The default guard as `bastion guard check` runs it (response direction, default configuration; tool definitions
in the tool direction): any finding and blocked, per source, on the validation splits of every allowed source
(`guard_data`'s allow-list; no test split is opened).

Why: the issue's goals are measured this way on unseen data; this is the same measurement on held-apart rows.
Run: `.venv/bin/python bench/eval_default.py` (neuralchemy's parquet needs pyarrow, from `make train-guard`'s
environment); for another tree, `PYTHONPATH=<tree>/src`.
"""

import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import guard_data as gd
from bastion.guard.config import GuardrailsConfig
from bastion.guard.engine import Guard

Tally = collections.Counter[tuple[int, str, bool]]


def rates(tally: Tally, kind: str) -> tuple[float, float, float, float, int, int]:
    """(recall, false-positive rate, precision, F1, positives, negatives) of `kind` (`any` or `blocked`)."""
    tp, fn = tally[(1, kind, True)], tally[(1, kind, False)]
    fp, tn = tally[(0, kind, True)], tally[(0, kind, False)]
    recall = tp / (tp + fn) if tp + fn else float("nan")
    fpr = fp / (fp + tn) if fp + tn else float("nan")
    precision = tp / (tp + fp) if tp + fp else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if tp else 0.0
    return recall, fpr, precision, f1, tp + fn, fp + tn


def main() -> None:
    rows = [r for r in gd.load_all() if r.split == "validation"]
    guard = Guard(GuardrailsConfig())
    tallies: dict[str, Tally] = collections.defaultdict(collections.Counter)
    for r in rows:
        if r.kind == "tool":
            definition = {"name": "t", "description": r.text, "inputSchema": {"type": "object"}}
            result = guard.inspect("tool", definition)
        else:
            result = guard.inspect("response", {"content": [{"type": "text", "text": r.text}]})
        tallies[r.source][(r.label, "any", bool(result.findings))] += 1
        tallies[r.source][(r.label, "blocked", result.blocked)] += 1
    print(f"{'source':16} {'n+':>5} {'n-':>5}  any: R / FPR / P / F1        blocked: R / FPR")
    for source in sorted(tallies):
        a, b = rates(tallies[source], "any"), rates(tallies[source], "blocked")
        print(
            f"{source:16} {a[4]:5} {a[5]:5}  {a[0]:.3f} / {a[1]:.3f} / {a[2]:.3f} / {a[3]:.3f}"
            f"    {b[0]:.3f} / {b[1]:.3f}"
        )


if __name__ == "__main__":
    main()
