"""Salted fingerprints of sensitive values, and finding them (or fragments of them) in later arguments.

Rules:
- Only fingerprints are kept, never values: keyed BLAKE2b of the normalised text under a per-session random salt,
  cut to 64 bits. A store dump without the salt cannot be checked against guesses; with it, only by brute force.
- Normalisation keeps letters and digits, case-folded, so re-spacing, punctuation or case do not hide a value.
- A value is fingerprinted as overlapping windows of `SHINGLE` characters (its shingles), so any fragment of at
  least `SHINGLE` characters of it is found again; a value shorter than that is one fingerprint of its own length.
- Values shorter than `MIN_CHARS` normalised characters are not fingerprinted (they would match by chance).
- Pure functions: no I/O; `TaintStore` keeps what they return.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Final

SHINGLE: Final = 12
"""Normalised characters per window: a fragment this long of a private value is a match."""
MIN_CHARS: Final = 6
"""Shortest normalised value worth a fingerprint."""
MAX_PER_VALUE: Final = 256
"""Windows kept per value (evenly spread over a longer value)."""

Fingerprint = tuple[int, str]
"""(window length, hex digest)."""


def normalise(text: str) -> str:
    """Letters and digits only, case-folded."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _digest(salt: bytes, text: str) -> str:
    return hashlib.blake2b(text.encode(), key=salt, digest_size=8).hexdigest()


def fingerprints(value: str, salt: bytes) -> set[Fingerprint]:
    """The fingerprints of one sensitive value (empty when it is too short to be worth one)."""
    text = normalise(value)
    if len(text) < MIN_CHARS:
        return set()
    if len(text) <= SHINGLE:
        return {(len(text), _digest(salt, text))}
    starts = range(len(text) - SHINGLE + 1)
    if len(starts) > MAX_PER_VALUE:
        step = len(starts) / MAX_PER_VALUE
        starts = range(0, len(starts), max(1, int(step)))
    return {(SHINGLE, _digest(salt, text[i : i + SHINGLE])) for i in starts}


def find(strings: Iterable[str], known: Mapping[int, frozenset[str]], salt: bytes) -> set[Fingerprint]:
    """Which `known` fingerprints (window length -> digests) occur in any of `strings`."""
    hits: set[Fingerprint] = set()
    if not known:
        return hits
    for raw in strings:
        text = normalise(raw)
        for length, digests in known.items():
            for i in range(len(text) - length + 1):
                digest = _digest(salt, text[i : i + length])
                if digest in digests:
                    hits.add((length, digest))
    return hits
