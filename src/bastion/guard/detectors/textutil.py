"""Small text measures shared by detectors: entropy, placeholders, checksums."""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Final

_PLACEHOLDER_WORDS: Final = re.compile(
    r"(?i)x{4,}|\*{3,}|\.{3,}|…|#{4,}|example|sample|placeholder|changeme|change_me|redacted|your[_\-. ]?"
    r"|insert[_\- ]|_here\b|dummy|<[^>]*>|\$\{|\{\{|%\(|\$\(|^\$|^%[a-z_]"
)
"""Values that are documentation, templates or variables rather than real secrets."""


def shannon_entropy(text: str) -> float:
    """Bits of entropy per character (0 for empty text)."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def longest_run(text: str) -> int:
    """Length of the longest run of one repeated character."""
    best = run = 0
    previous = ""
    for ch in text:
        run = run + 1 if ch == previous else 1
        previous = ch
        best = max(best, run)
    return best


def looks_placeholder(value: str) -> bool:
    """`xxxx`, `<YOUR_KEY>`, `${VAR}`, `EXAMPLE`, or one character repeated over much of the value."""
    if _PLACEHOLDER_WORDS.search(value):
        return True
    run = longest_run(value)
    return (run >= 6 and run * 2 >= len(value)) or (len(value) >= 12 and len(set(value)) <= 3)


def char_classes(value: str) -> int:
    """How many of lower, upper, digit, other a value uses."""
    lower = upper = digit = other = 0
    for ch in value:
        if ch.islower():
            lower = 1
        elif ch.isupper():
            upper = 1
        elif ch.isdigit():
            digit = 1
        else:
            other = 1
    return lower + upper + digit + other


def luhn_ok(digits: str) -> bool:
    """The Luhn (mod 10) check used by payment cards and several national IDs."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def only_digits(text: str) -> str:
    """The ASCII digits of `text`, in order."""
    return "".join(ch for ch in text if "0" <= ch <= "9")


def window(text: str, start: int, end: int, before: int = 40, after: int = 0) -> str:
    """Lower-cased text around a span, for context-word checks."""
    return text[max(0, start - before) : end + after].lower()
