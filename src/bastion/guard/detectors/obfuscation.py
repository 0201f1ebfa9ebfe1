"""Hidden text: instructions inside base64/hex blobs, Unicode tag characters, zero-width and bidi controls, and
homoglyph (mixed-script) words. Shared by the `injection` and `poisoning` detectors.

The rules only find *where* something is hidden; `reveal()` recovers the hidden text (decoding, stripping,
mapping lookalikes to Latin) and the caller checks that text with the instruction phrases. Decoding is bounded: at
most `max_blobs` blobs per string, each at most `_MAX_BLOB` characters.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from typing import Final

from bastion.guard.detector import Rule
from bastion.guard.detectors.injection_rules import INSTRUCTION_RULES
from bastion.guard.finding import Severity
from bastion.guard.matcher import MultiMatcher

_MAX_BLOB: Final = 8192
"""Longest blob decoded, in characters."""

OBFUSCATION_RULES: Final[tuple[Rule, ...]] = (
    Rule(
        # Base64 of ASCII text: every 4-character group starts with A-Z or a-f (the first byte is below 0x80),
        # which random tokens, hashes and URL paths rarely keep up for 8 groups.
        type="encoded_base64",
        pattern=r"(?<![A-Za-z0-9+/=_-])(?:[A-Za-f][A-Za-z0-9+/]{3}){8,}(?:[A-Za-z0-9+/]{2,3}={0,2}|={0,2})(?![A-Za-z0-9+/=_-])",
        prefilter=r"(?:[A-Za-f][A-Za-z0-9+/]{3}){8}",
        severity=Severity.HIGH,
    ),
    Rule(
        # Hex of ASCII text: every byte is 0x20-0x7e (first digit 2-7) or a tab/newline.
        type="encoded_hex",
        pattern=r"(?<![0-9A-Fa-f])(?:[2-7][0-9A-Fa-f]|0[9aAdD]){16,}(?![0-9A-Fa-f])|(?:\\x(?:[2-7][0-9A-Fa-f]|0[9aAdD])){8,}",
        prefilter=r"(?:[2-7][0-9A-Fa-f]|0[9aAdD]){16}|(?:\\x(?:[2-7][0-9A-Fa-f]|0[9aAdD])){8}",
        severity=Severity.HIGH,
    ),
    Rule(
        type="unicode_tags",
        pattern="[\U000e0000-\U000e007f]+",
        prefilter=r"\xF3\xA0[\x80\x81][\x80-\xBF]",
        severity=Severity.CRITICAL,
    ),
    Rule(
        type="invisible_characters",
        pattern="[\u200b\u2060-\u2064\ufeff\u180e]|(?<=[A-Za-z])[\u200c\u200d](?=[A-Za-z])",
        prefilter=r"\xE2\x80[\x8B-\x8D]|\xE2\x81[\xA0-\xA4]|\xEF\xBB\xBF|\xE1\xA0\x8E",
        severity=Severity.LOW,
    ),
    Rule(
        type="bidi_control",
        pattern="[\u202a-\u202e\u2066-\u2069]",
        prefilter=r"\xE2\x80[\xAA-\xAE]|\xE2\x81[\xA6-\xA9]",
        severity=Severity.MEDIUM,
    ),
    Rule(
        type="homoglyph",
        pattern="[A-Za-z][\u0370-\u03ff\u0400-\u04ff]|[\u0370-\u03ff\u0400-\u04ff][A-Za-z]|[\uff21-\uff3a\uff41-\uff5a]{3,}",
        prefilter=r"[A-Za-z][\xCD-\xD3][\x80-\xBF]|[\xCD-\xD3][\x80-\xBF][A-Za-z]|\xEF(?:\xBC[\xA1-\xBA]|\xBD[\x81-\x9A])",
        severity=Severity.MEDIUM,
    ),
)
"""Where text may be hidden. Types here are the "hiding place"; a revealed instruction is `obfuscated_instruction`."""

OBFUSCATION_TYPES: Final = frozenset(r.type for r in OBFUSCATION_RULES)

_CONFUSABLES: Final = str.maketrans(
    "аеорсухіјѕԁԛԝАВЕКМНОРСТХУІЈЅαορικνυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdqwABEKMHOPCTXYIJSaopikvuxABEZHIKMNOPTYX",
)
"""Cyrillic and Greek letters that render like Latin ones."""

_INVISIBLE: Final = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\u180e\U000e0000-\U000e007f]")
_ACTION_WORDS: Final = re.compile(
    r"(?i)\b(?:ignore|disregard|send|email|forward|transfer|upload|post|call|execute|run|delete|read|password|secret"
    r"|token|instructions?|assistant|system prompt|do not tell)\b"
)
_WORD_CHARS: Final = re.compile(r"\w+")


def _printable(text: str) -> bool:
    if not text:
        return False
    good = sum(ch.isprintable() or ch in "\n\r\t" for ch in text)
    return good / len(text) >= 0.9 and len(_WORD_CHARS.findall(text)) >= 3


_HEX_TEXT_HIGH: Final = frozenset("234567")
_B64_TEXT_FIRST: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef")


def could_be_text(kind: str, blob: str) -> bool:
    """Cheap pre-check before decoding: ASCII text has a recognisable shape in hex and base64 (hashes do not)."""
    if kind == "encoded_hex":
        digits = blob.replace("\\x", "")
        return all(ch in _HEX_TEXT_HIGH for ch in digits[0:32:2])
    return all(ch in _B64_TEXT_FIRST for ch in blob[0:64:4])


def decode_blob(kind: str, blob: str) -> str | None:
    """Text hidden in a base64 or hex blob, or `None` if it decodes to nothing readable."""
    blob = blob[:_MAX_BLOB]
    if not could_be_text(kind, blob):
        return None
    text = decode_utf8(blob, hex_digits=kind == "encoded_hex")
    return text if text is not None and _printable(text) else None


def decode_utf8(blob: str, *, hex_digits: bool) -> str | None:
    """A hex (`414243`, `\\x41\\x42`) or base64/base64url blob decoded as UTF-8, or None if it is not that."""
    raw: bytes
    try:
        if hex_digits:
            hexdigits = blob.replace("\\x", "")
            raw = binascii.unhexlify(hexdigits[: len(hexdigits) // 2 * 2])
        else:
            padded = blob.rstrip("=")
            padded += "=" * (-len(padded) % 4)
            altchars = b"-_" if ("-" in blob or "_" in blob) else None
            raw = base64.b64decode(padded, altchars=altchars, validate=False)
        return raw.decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def decode_tags(run: str) -> str:
    """The ASCII text carried by Unicode tag characters (U+E0020..U+E007E)."""
    return "".join(chr(ord(ch) - 0xE0000) for ch in run if 0xE0020 <= ord(ch) <= 0xE007E)


def strip_invisible(text: str) -> str:
    """`text` without zero-width, bidi and tag characters."""
    return _INVISIBLE.sub("", text)


def unconfuse(text: str) -> str:
    """`text` with Cyrillic/Greek lookalikes mapped to Latin and full-width forms folded (NFKC)."""
    return unicodedata.normalize("NFKC", text.translate(_CONFUSABLES))


_instructions: MultiMatcher | None = None


def is_instruction(text: str) -> bool:
    """Whether recovered text carries an instruction (an override, a hijack, a credential path, an action)."""
    global _instructions
    if _instructions is None:
        _instructions = MultiMatcher(INSTRUCTION_RULES)  # built on first use: most payloads never need it
    return any(next(_instructions.finditer(i, text), None) is not None for i in _instructions.matching(text))


def looks_actionable(text: str) -> bool:
    """Weaker than `is_instruction`: recovered prose with action words (send, delete, password...)."""
    return len(_ACTION_WORDS.findall(text)) >= 2


def mixed_script_word(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The word around a Latin/Cyrillic-Greek boundary, if it turns into plain Latin once lookalikes are mapped."""
    ws, we = start, end
    while ws > 0 and text[ws - 1].isalpha():
        ws -= 1
    while we < len(text) and text[we].isalpha():
        we += 1
    word = text[ws:we]
    mapped = word.translate(_CONFUSABLES)
    if mapped.isascii() and not word.isascii() and len(word) >= 3:
        return ws, we
    return None
