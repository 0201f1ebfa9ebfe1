"""Train the learned guard model and measure it: `make train-guard`.

Steps (all seeded, all data from `guard_data`'s allow-list):
1. Cut every row into the windows the detector scores (`textmodel.window_bounds`). A window of an attacked row is
   positive only when it holds a sentence that no clean row of the same source has, so the benign e-mail around a
   buried instruction is not taught as an attack.
2. Leave-one-source-out: for each source, fit on the train split of every other source and score all of the held-out
   source's rows (a row fires when its best window reaches the threshold).
3. Fit on the train split of every source, report the validation split and the held-out benign documents and code,
   and write `src/bastion/guard/models/injection-ngram-v1.npz` plus the figures to `bench/results/`.

Designs compared (`--design`): `ngram` (hashed word+char n-grams, logistic regression; the shipped one) and
`ngram-char` (character n-grams only); `bench/guard_embed.py` adds the MiniLM embedding design on the same splits.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bastion.guard.detectors.classifier import MODEL_FILE
from bastion.guard.detectors.textmodel import CHAR_ORDERS, TextModel, features, save_model, window_bounds
from eval_guardrails import Counts
from guard_data import ROOT, WHEELS, Row, load_all

BITS = 18
SEED = 17
C = float(os.environ.get("GUARD_C", "20"))
THRESHOLD = 0.5
MAX_WINDOWS_PER_ROW = 8
OUT = ROOT / "src" / "bastion" / "guard" / "models" / MODEL_FILE
RESULTS = ROOT / "bench" / "results"
_SENT = re.compile(r"[^.!?\n]+[.!?\n]*")


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: int
    source: str


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT.findall(text) if len(s.strip()) > 3]


def examples(rows: Iterable[Row]) -> list[Example]:
    """Training windows, labelled by what differs from the clean rows of the same source."""
    rows = list(rows)
    clean: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        if r.label == 0:
            clean[r.source].update(_sentences(r.text))
    out: list[Example] = []
    seen: set[tuple[str, int]] = set()
    rng = np.random.default_rng(SEED)
    for r in rows:
        windows = window_bounds(r.text)
        if len(windows) > MAX_WINDOWS_PER_ROW:
            keep = sorted(rng.choice(len(windows), MAX_WINDOWS_PER_ROW, replace=False).tolist())
            if r.label:
                keep = list(range(len(windows)))  # every window of an attack: the novel one must be kept
            windows = [windows[i] for i in keep]
        for s, e in windows:
            text = r.text[s:e]
            label = r.label
            if label and clean[r.source]:
                label = int(any(x not in clean[r.source] for x in _sentences(text)))
            key = (text, label)
            if key not in seen and text.strip():
                seen.add(key)
                out.append(Example(text, label, r.source))
    return out


def matrix(
    texts: Sequence[str],
    bits: int,
    featurize: Callable[[str, int], tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]],
):  # type: ignore[no-untyped-def]
    from scipy.sparse import csr_matrix

    indptr = [0]
    indices: list[npt.NDArray[np.int64]] = []
    data: list[npt.NDArray[np.float64]] = []
    for t in texts:
        _, buckets = featurize(t, bits)
        uniq, counts = np.unique(buckets, return_counts=True)
        total = max(len(buckets), 1)
        indices.append(uniq)
        data.append(counts / np.sqrt(total))
        indptr.append(indptr[-1] + len(uniq))
    return csr_matrix(
        (np.concatenate(data) if data else [], np.concatenate(indices) if indices else [], indptr),
        shape=(len(texts), 1 << bits),
    )


def char_only(text: str, bits: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Design `ngram-char`: the same hashing without word features (for the comparison only)."""
    positions, buckets = features(text, bits)
    n = len(text.lower())
    chars = sum(max(n - order + 1, 0) for order in CHAR_ORDERS)  # char n-grams come first in `features`
    return positions[:chars], buckets[:chars]


def fit(train: list[Example], featurize=features) -> TextModel:  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression

    x = matrix([e.text for e in train], BITS, featurize)
    y = np.array([e.label for e in train])
    clf = LogisticRegression(
        C=C, solver="liblinear", class_weight="balanced", random_state=SEED, max_iter=200
    )
    clf.fit(x, y)
    return TextModel(
        weights=clf.coef_[0].astype(np.float32), bias=float(clf.intercept_[0]), bits=BITS, meta={}
    )


def summary(counts: Counts) -> dict[str, float | int]:
    """P, R, F1 and FPR (NaN where undefined, e.g. recall of a benign-only source) with the raw counts."""
    nan = float("nan")
    p = counts.tp / (counts.tp + counts.fp) if counts.tp + counts.fp else nan
    r = counts.tp / (counts.tp + counts.fn) if counts.tp + counts.fn else nan
    f = 2 * p * r / (p + r) if counts.tp else 0.0
    fpr = counts.fp / (counts.fp + counts.tn) if counts.fp + counts.tn else nan
    return {
        "P": p,
        "R": r,
        "F1": f,
        "FPR": fpr,
        "tp": counts.tp,
        "fp": counts.fp,
        "fn": counts.fn,
        "tn": counts.tn,
    }


def row_scores(model: TextModel, rows: Sequence[Row], *, two_stage: bool) -> list[float]:
    """Best window score per row; `two_stage` scores only windows near a stage-1 cue (as served, for results)."""
    from bastion.guard.detectors.classifier import CUE_RULES, score_near

    cues = [re.compile(r.pattern, r.flags) for r in CUE_RULES]
    out: list[float] = []
    for r in rows:
        if two_stage and r.kind != "tool":
            spans = [m.span() for c in cues for m in c.finditer(r.text)]
            scored = score_near(model, r.text, spans)
            out.append(max((s for s, _, _ in scored), default=0.0))
        else:
            out.append(model.score(r.text))
    return out


def measure(
    model: TextModel, rows: Sequence[Row], threshold: float = THRESHOLD
) -> dict[str, dict[str, float | int]]:
    """Counts per source (and per kind for benign), for the model alone and as served (two stages)."""
    report: dict[str, dict[str, float | int]] = {}
    for mode, two in (("model", False), ("served", True)):
        per: dict[str, Counts] = defaultdict(Counts)
        for r, score in zip(rows, row_scores(model, rows, two_stage=two), strict=True):
            per[r.source].add(bool(r.label), score >= threshold)
            per["ALL"].add(bool(r.label), score >= threshold)
        for source, counts in per.items():
            report[f"{mode}:{source}"] = summary(counts)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--design", choices=("ngram", "ngram-char"), default="ngram")
    parser.add_argument("--no-loso", action="store_true", help="skip leave-one-source-out (faster)")
    parser.add_argument("--no-write", action="store_true", help="do not overwrite the shipped weights")
    args = parser.parse_args()
    featurize = features if args.design == "ngram" else char_only
    started = time.time()
    rows = load_all()
    sources = sorted({r.source for r in rows})
    print(f"{len(rows)} rows from {len(sources)} sources: {sources}")
    results: dict[str, object] = {
        "design": args.design,
        "bits": BITS,
        "C": C,
        "seed": SEED,
        "threshold": THRESHOLD,
    }
    if not args.no_loso:
        loso: dict[str, object] = {}
        for held in sources:
            train = examples(r for r in rows if r.source != held and r.split == "train")
            model = fit(train, featurize)
            test = [r for r in rows if r.source == held]
            loso[held] = measure(model, test)
            m = loso[held]
            print(f"LOSO {held:<14} model {_fmt(m['model:' + held])}  served {_fmt(m['served:' + held])}")
        results["loso"] = loso
    train_rows = [r for r in rows if r.split == "train"]
    val_rows = [r for r in rows if r.split == "validation"]
    train = examples(train_rows)
    print(f"training windows: {len(train)} ({sum(e.label for e in train)} positive)")
    model = fit(train, featurize)
    results["tuning"] = measure(model, train_rows)
    results["validation"] = measure(model, val_rows)
    for name in ("tuning", "validation"):
        block = results[name]
        assert isinstance(block, dict)
        for key in sorted(block):
            if key.startswith(("served:", "model:ALL")):
                print(f"{name:<10} {key:<24} {_fmt(block[key])}")
    meta = {
        "design": args.design,
        "data": WHEELS,
        "shared_corpora": ["inj_bipia.jsonl", "inj_agentdojo.jsonl", "tool_poisoning.jsonl"],
        "bits": BITS,
        "C": C,
        "seed": SEED,
        "training_windows": len(train),
        "figures": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"guard-model-{args.design}.json").write_text(json.dumps(results, indent=1, default=str))
    if not args.no_write and args.design == "ngram":
        OUT.parent.mkdir(parents=True, exist_ok=True)
        save_model(OUT, model.weights, model.bias, BITS, json.loads(json.dumps(meta, default=str)))
        print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size / 1e6:.2f} MB)")
    print(f"done in {time.time() - started:.0f}s")
    return 0


def _fmt(m: dict[str, float | int]) -> str:
    return f"P={m['P']:.3f} R={m['R']:.3f} F1={m['F1']:.3f} FPR={m['FPR']:.3f}"


if __name__ == "__main__":
    sys.exit(main())
