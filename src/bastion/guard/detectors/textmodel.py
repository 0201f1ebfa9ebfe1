"""The learned text model: hashed word and character n-grams, a linear scorer, and windows over long text.

Training (`bench/train_guard.py`) and serving share `features()` and `window_bounds()`, so what the model was fitted
on is exactly what it scores. The weights are one float32 vector loaded from an `.npz` file with
`allow_pickle=False`; nothing executable is ever read.

Rules:
- Features of a text are the n-grams that start in it: characters 3, 4 and 5 (lower-cased), whole words and pairs of
  adjacent words. Each is hashed with a polynomial hash of its code points (stable across processes, unlike
  `hash()`) into `2**bits` buckets; its value is its count divided by the square root of the number of features.
- A long text is scored per window (`window_bounds`): sentences grouped up to `WINDOW_CHARS`, one window starting at
  each sentence, so an instruction buried in the middle of a document is scored on its own. The text's score is the
  highest window score. Scoring every window costs one pass: per-position weight sums and a cumulative sum.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

WINDOW_CHARS: Final = 320
"""Longest window (characters) built from whole sentences; a longer sentence is cut into windows of this size."""
WINDOW_STRIDE: Final = 160
"""Step (characters) between windows cut out of one over-long sentence."""
CHAR_ORDERS: Final = (3, 4, 5)
"""Character n-gram lengths."""
_P: Final = np.uint64(0x100000001B3)
"""Odd multiplier of the polynomial hash (the 64-bit FNV prime); odd, so it has an inverse modulo 2**64."""
_P_INV: Final = np.uint64(pow(0x100000001B3, -1, 2**64))
_MIX: Final = np.uint64(0x9E3779B97F4A7C15)
"""Fibonacci-hashing multiplier: spreads a 64-bit hash over its top bits."""
_SALTS: Final = {3: 0x51, 4: 0x52, 5: 0x53, "word": 0x61, "pair": 0x62}
"""Per feature kind, so the word `the` and the trigram `the` land in different buckets."""
_SENTENCE_END: Final = re.compile(r"[.!?\n;\u3002\uff01\uff1f\uff1b]+")
"""What ends a sentence (also the CJK full-width marks)."""
_MAX_POWERS: Final = 1 << 17
"""Inverse powers are precomputed for texts up to this many code points; longer ones are scored in slices."""

_powers_cache: list[tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]] = []
_MIN_POWERS: Final = 1 << 12


def _powers(n: int) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """(P**i, P**-i) modulo 2**64 for i below at least `n` (at most `_MAX_POWERS`).

    Grown by doubling as longer texts arrive, so a gateway that only sees small payloads holds 64 KB, not the 2 MB
    the longest text needs; the tables are replaced whole, never changed, so a reader never sees a half-built one.
    """
    current = _powers_cache[0] if _powers_cache else None
    if current is not None and len(current[0]) >= n:
        return current
    size = _MIN_POWERS
    while size < n:
        size *= 2
    size = min(size, _MAX_POWERS)
    tables: list[npt.NDArray[np.uint64]] = []
    with np.errstate(over="ignore"):
        for base in (_P, _P_INV):
            steps = np.full(size, base, dtype=np.uint64)
            steps[0] = 1
            tables.append(np.cumprod(steps, dtype=np.uint64))
    built = (tables[0], tables[1])
    if not _powers_cache or len(_powers_cache[0][0]) < size:
        _powers_cache[:] = [built]
    return built


def _is_word_char(cps: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
    ascii_word = ((cps >= 48) & (cps <= 57)) | ((cps >= 97) & (cps <= 122)) | (cps == 95)
    # Letters of other scripts count as word characters; common punctuation and spaces above ASCII do not.
    other = (cps >= 0xC0) & ~((cps >= 0x2000) & (cps <= 0x206F)) & ~((cps >= 0x3000) & (cps <= 0x303F))
    result: npt.NDArray[np.bool_] = ascii_word | other
    return result


def features(text: str, bits: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Every hashed feature of `text` with the code-point offset where it starts.

    Args:
        text: any string (lower-cased here); at most `_MAX_POWERS` code points.
        bits: log2 of the number of hash buckets.

    Returns:
        (positions, buckets), two equally long integer arrays.
    """
    cps = np.frombuffer(text.lower().encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    n = len(cps)
    if n > _MAX_POWERS:
        raise ValueError("text too long for one feature pass")
    shift = np.uint64(64 - bits)
    fwd, inv = _powers(n)
    with np.errstate(over="ignore"):
        # prefix[i] = sum((cps[j] + 1) * P**j for j < i), wrapping modulo 2**64.
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum((cps.astype(np.uint64) + np.uint64(1)) * fwd[:n], out=prefix[1:])

        def segment(
            starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64], salt: int
        ) -> npt.NDArray[np.int64]:
            h = (prefix[ends] - prefix[starts]) * inv[starts] + np.uint64(salt)
            return ((h * _MIX) >> shift).astype(np.int64)

        positions: list[npt.NDArray[np.int64]] = []
        buckets: list[npt.NDArray[np.int64]] = []
        every = np.arange(n, dtype=np.int64)
        for order in CHAR_ORDERS:
            if n >= order:
                # The same hash as `segment` over consecutive starts, with slices instead of gathers.
                count = n - order + 1
                h = (prefix[order:] - prefix[:count]) * inv[:count] + np.uint64(_SALTS[order])
                positions.append(every[:count])
                buckets.append(((h * _MIX) >> shift).astype(np.int64))
        word = _is_word_char(cps)
        edges = np.flatnonzero(np.diff(np.concatenate(([False], word, [False])).astype(np.int8)))
        if len(edges):
            w_start = edges[0::2].astype(np.int64)
            w_end = edges[1::2].astype(np.int64)
            words = segment(w_start, w_end, _SALTS["word"])
            positions.append(w_start)
            buckets.append(words)
            if len(words) > 1:
                pairs = (
                    words[:-1].astype(np.uint64) * _P
                    + words[1:].astype(np.uint64)
                    + np.uint64(_SALTS["pair"])
                )
                positions.append(w_start[:-1])
                buckets.append(((pairs * _MIX) >> shift).astype(np.int64))
    if not positions:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(positions), np.concatenate(buckets)


def window_bounds(text: str) -> list[tuple[int, int]]:
    """The windows a text is scored in: runs of whole sentences up to `WINDOW_CHARS`, one starting at each sentence.

    A text no longer than one window is a single window.
    """
    n = len(text)
    if n <= WINDOW_CHARS:
        return [(0, n)]
    cuts = [0, *(m.end() for m in _SENTENCE_END.finditer(text) if m.end() < n), n]
    # Sentences, with over-long ones cut into overlapping pieces.
    sentences: list[tuple[int, int]] = []
    for s, e in itertools.pairwise(cuts):
        if e - s <= WINDOW_CHARS:
            if e > s:
                sentences.append((s, e))
            continue
        start = s
        while start < e:
            sentences.append((start, min(e, start + WINDOW_CHARS)))
            if start + WINDOW_CHARS >= e:
                break
            start += WINDOW_STRIDE
    windows: list[tuple[int, int]] = []
    j = 0
    for i, (s, _) in enumerate(sentences):
        j = max(j, i)
        while j + 1 < len(sentences) and sentences[j + 1][1] - s <= WINDOW_CHARS:
            j += 1
        windows.append((s, sentences[j][1]))
    return windows


@dataclass(frozen=True, slots=True)
class TextModel:
    """A fitted linear model over hashed n-grams."""

    weights: npt.NDArray[np.float32]
    """One weight per hash bucket (`2**bits` of them)."""
    bias: float
    bits: int
    meta: dict[str, object]
    """What `train_guard.py` recorded: data versions, seeds, thresholds it measured."""

    def score_windows(self, text: str, windows: list[tuple[int, int]]) -> npt.NDArray[np.float64]:
        """Probability that each window of `text` carries an injected instruction."""
        if not windows:
            return np.zeros(0)
        lo = min(s for s, _ in windows)
        hi = max(e for _, e in windows)
        out = np.empty(len(windows))
        if hi - lo > _MAX_POWERS:
            for k, (s, e) in enumerate(windows):
                out[k] = self.score_windows(text, [(s, e)])[0]
            return out
        positions, buckets = features(text[lo:hi], self.bits)
        n = hi - lo
        weight_sum = np.concatenate(([0.0], np.cumsum(np.bincount(positions, self.weights[buckets], n))))
        count_sum = np.concatenate(([0], np.cumsum(np.bincount(positions, minlength=n))))
        starts = np.fromiter((s - lo for s, _ in windows), dtype=np.int64, count=len(windows))
        ends = np.fromiter((e - lo for _, e in windows), dtype=np.int64, count=len(windows))
        counts = np.maximum(count_sum[ends] - count_sum[starts], 1)
        logits = self.bias + (weight_sum[ends] - weight_sum[starts]) / np.sqrt(counts)
        return np.asarray(1.0 / (1.0 + np.exp(-logits)))

    def score(self, text: str) -> float:
        """The highest window probability of `text` (0 for an empty text)."""
        if not text:
            return 0.0
        if len(text) <= WINDOW_CHARS:
            # One window: the same sum as `score_windows`, without its per-position bookkeeping (small payloads
            # are scored whole on the hot path, so the fixed cost is what counts).
            _, buckets = features(text, self.bits)
            total = float(self.weights[buckets].sum(dtype=np.float64))
            logit = self.bias + total / math.sqrt(max(len(buckets), 1))
            return 1.0 / (1.0 + math.exp(-logit))
        return float(self.score_windows(text, window_bounds(text)).max())


class ModelError(Exception):
    """The weights file is missing, unreadable, of the wrong shape, or fails its checksum."""


def weights_digest(weights: npt.NDArray[np.float32], bias: float, bits: int) -> str:
    """SHA-256 over what decides a score, stored next to the weights so that a damaged file is refused."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(weights, dtype="<f4").tobytes())
    h.update(f"{bias!r}:{bits}".encode())
    return h.hexdigest()


def load_model(path: Path) -> TextModel:
    """Read and verify a weights file written by `save_model`.

    Raises:
        ModelError: anything wrong with the file; the detector then fails closed.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            weights = np.asarray(data["weights"], dtype=np.float32)
            bias = float(data["bias"])
            bits = int(data["bits"])
            digest = str(data["sha256"])
            meta = json.loads(str(data["meta"]))
    except Exception as exc:  # zipfile, KeyError, ValueError, OSError: all mean "not a usable model"
        raise ModelError(f"cannot read model weights {path.name}: {type(exc).__name__}") from exc
    if weights.shape != (1 << bits,) or not np.all(np.isfinite(weights)) or not math.isfinite(bias):
        raise ModelError(f"model weights {path.name} have the wrong shape or non-finite values")
    if weights_digest(weights, bias, bits) != digest:
        raise ModelError(f"model weights {path.name} fail their checksum")
    return TextModel(weights=weights, bias=bias, bits=bits, meta=meta)


def save_model(
    path: Path, weights: npt.NDArray[np.float32], bias: float, bits: int, meta: dict[str, object]
) -> None:
    """Write weights, bias, bucket count, checksum and metadata as a plain (pickle-free) `.npz`."""
    weights = np.ascontiguousarray(weights, dtype=np.float32)
    np.savez_compressed(
        path,
        weights=weights,
        bias=np.float64(bias),
        bits=np.int64(bits),
        sha256=np.str_(weights_digest(weights, bias, bits)),
        meta=np.str_(json.dumps(meta, sort_keys=True)),
    )
