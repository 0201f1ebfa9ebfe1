"""Normalised views of a payload's strings, so every detector also sees what encoding, spacing or splitting hides.

The engine scans the raw strings first. Then this module derives extra texts, each tied to the string it came from:
- decoded: base64/base64url, hex, `\\xNN`, percent-encoding, `\\uXXXX` escapes and HTML entities, decoded in place;
  `Authorization: Basic ...` decoded to its password;
- cleaned: zero-width and bidi characters removed, Cyrillic/Greek/full-width lookalikes folded to Latin, s p a c e d
  letters joined, l33t digits turned back into letters;
- joined: short sibling strings (fields of one object, or the same field across the items of one list) glued
  together, so a secret or card number split across fields or content items is seen whole;
- fields: `key: value` for string values under credential-named keys (`password`, `client_secret`,
  `access_token`, `api_key`...), or named so by a sibling (`{"name": "CLIENT_SECRET", "value": ...}`), so the
  secrets detector judges them as the assignments they are;
- keys: long object keys (property names), which the raw walk does not scan.

Rules:
- Clean payloads stay on the fast path: one multi-pattern pass marks candidate segments; nothing is decoded,
  copied or joined unless a cheap pattern marked it.
- Everything is bounded: `MAX_VIEWS` views, `MAX_VIEW_CHARS` characters in all, decoding only of marked segments.
- A view finding is reported at the path of its origin; redacting it redacts the whole origin string (the exact
  span has no meaning in the original), and a finding in an object key cannot be redacted, so it blocks.
"""

from __future__ import annotations

import bisect
import html
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass
from typing import Final

from bastion.guard.detector import Rule
from bastion.guard.detectors.obfuscation import decode_utf8
from bastion.guard.matcher import MultiMatcher, ascii_view
from bastion.guard.payload import PathLink, Walk

MAX_VIEWS: Final = 64
"""Derived texts per payload."""
MAX_VIEW_CHARS: Final = 65_536
"""Characters of derived text per payload."""
MAX_JOIN_PART: Final = 64
"""Longest string that takes part in a joined view: splitting is for tokens and numbers; sentences are whole."""
JOIN_SCOPE: Final = 128
"""Only the first strings of a payload are joined (a tool result of thousands of records is not a split secret)."""
JOIN_ITEMS: Final = 16
"""Only the first items of a list are joined field by field (content blocks, not API record lists)."""
_CONTEXT: Final = 120
"""Characters kept on each side of a marked segment: enough for the words that make a finding (`token:`)."""
_MARKS_PER_RULE: Final = 64
_WINDOWS_PER_STRING: Final = 16

MAX_JOINED_CHARS: Final = 4096
"""Characters of joined views per payload (the first groups in document order)."""

_CANDIDATES: Final[tuple[Rule, ...]] = (
    # Base64 (and base64url) of text: every 4-character group starts with I-Z or a-f (first byte 0x20-0x7e).
    Rule(
        type="base64",
        pattern=r"(?:[I-Za-f][A-Za-z0-9+/_-]{3}){6,}[A-Za-z0-9+/_-]{0,3}={0,2}",
        prefilter=r"[A-Za-z0-9+/_-]{24}",  # a plain run is far cheaper for the first pass than the grouped form
    ),
    Rule(type="hex", pattern=r"(?:[2-7][0-9a-fA-F]){10,}|(?:\\x[2-7][0-9a-fA-F]){4,}"),
    Rule(type="percent", pattern=r"(?:%[0-9A-Fa-f]{2}[^%\s]{0,12}){2,}"),
    Rule(type="unicode_escape", pattern=r"\\u[0-9a-fA-F]{4}"),
    Rule(type="entity", pattern=r"&#[xX]?[0-9a-fA-F]{2,6};|(?:&[a-zA-Z]{2,8};[^&]{0,40}){2,}"),
    Rule(
        type="invisible",
        pattern="[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]",
        prefilter=r"\xC2\xAD|\xE2\x80[\x8B-\x8F\xAA-\xAE]|\xE2\x81[\xA0-\xA4\xA6-\xA9]|\xEF\xBB\xBF",
    ),
    Rule(
        type="confusable",
        pattern="[A-Za-z][\u0370-\u03ff\u0400-\u04ff]|[\u0370-\u03ff\u0400-\u04ff][A-Za-z]|[\uff01-\uff5e]{2,}",
        prefilter=r"[A-Za-z][\xCD-\xD3][\x80-\xBF]|[\xCD-\xD3][\x80-\xBF][A-Za-z]|\xEF(?:\xBC[\x81-\xBF]|\xBD[\x80-\x9E])",
    ),
    Rule(
        type="spaced",
        pattern=r"(?:\b[A-Za-z][ .*_|-]){5,}[A-Za-z]\b",
        prefilter=r"(?:[A-Za-z][ .*_|-]){5,}[A-Za-z]",
    ),
    # Two l33t words close together; letters beyond a-f so that hex hashes and ids do not count.
    Rule(type="leet", pattern=r"[g-zG-Z][013457@$][g-zG-Z][^\n]{0,60}?[g-zG-Z][013457@$][g-zG-Z]"),
    # Base64 of `user:password`: at least 8 characters with a digit, `+`, `/` or padding somewhere.
    Rule(type="basic", pattern=r"\b[Bb]asic\s+[A-Za-z0-9+/]{3,}[0-9+/=][A-Za-z0-9+/]*={0,2}"),
)
"""Cheap marks of segments worth decoding or cleaning."""

_CONFUSABLES: Final = str.maketrans(
    "аеорсухіјѕԁԛԝАВЕКМНОРСТХУІЈЅαορικνυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdqwABEKMHOPCTXYIJSaopikvuxABEZHIKMNOPTYX",
)
_LEET: Final = str.maketrans("013457@$", "oieastas")
_INVISIBLE: Final = re.compile("[\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_SPACED: Final = re.compile(r"\b(?:[A-Za-z][ .*_|-]){3,}[A-Za-z]\b")
_LEET_WORD: Final = re.compile(r"(?<![\w@$])[A-Za-z013457@$]*[013457@$][A-Za-z013457@$]*(?![\w@$])")
_BASIC: Final = re.compile(r"\b[Bb]asic\s+([A-Za-z0-9+/]{6,}={0,2})")
_CREDENTIAL_KEY: Final = re.compile(
    r"(?i)(?:^|[_.-]|(?<=[a-z])(?=[A-Z]))(?:pass(?:word|wd|phrase|code)?|pwd|secret|client[_-]?secret|api[_-]?key|apikey"
    r"|access[_-]?key|private[_-]?key|secret[_-]?key|(?:access|refresh|id|auth|bearer|session|api)[_-]?token|token"
    r"|authorization|credentials?)$"
)
"""Key names whose string value is a credential by name."""


@dataclass(frozen=True, slots=True)
class View:
    """One derived text and where it came from."""

    text: str
    origins: tuple[int, ...]
    """Indices into `Walk.strings` of the strings it was made from (empty for an object key)."""
    link: PathLink
    """Path reported for its findings."""
    cuts: tuple[int, ...] = ()
    """Offsets where joined strings meet; a joined view counts only findings that cross one."""


_matchers: dict[str | None, MultiMatcher] = {}


def _candidates(backend: str | None = None) -> MultiMatcher:
    """The candidate rules alone: a pass of their own for `derive` without marks (default backend), and finders
    for decoding inside a window (`re`: nothing to compile, as only `finditer` is used)."""
    matcher = _matchers.get(backend)
    if matcher is None:
        matcher = _matchers[backend] = MultiMatcher(_CANDIDATES, backend=backend)
    return matcher


def derive(seen: Walk, marks: dict[int, list[tuple[int, int, int]]] | None = None) -> list[View]:
    """The views worth scanning for one walked payload (usually none).

    Args:
        seen: the walk.
        marks: the marked segments when the caller's own pass already found them (`marks_in`); found here if None.
    """
    out: list[View] = []
    budget = [MAX_VIEW_CHARS]

    def add(view: View) -> None:
        if len(out) < MAX_VIEWS and 0 < len(view.text) <= budget[0]:
            budget[0] -= len(view.text)
            out.append(view)

    strings, links = seen.strings, seen.links
    for i, spans in sorted((marks if marks is not None else _marks(strings)).items()):
        cleaned = _normalise_windows(strings[i], spans)
        if cleaned is not None:
            add(View(cleaned, (i,), links[i]))
    for view in _fields(strings, links):
        add(view)
    for view in _joined(strings, links):
        add(view)
    for key, link in seen.keys:
        add(View(_key_text(key), (), link))
    return out


CANDIDATE_RULES: Final = _CANDIDATES
"""The marking rules, for a caller that runs them in its own multi-pattern pass (then `marks_in`)."""


def _marks(strings: list[str]) -> dict[int, list[tuple[int, int, int]]]:
    """string index -> (candidate rule, start, end) of marked segments, from one pass over all strings."""
    if not strings:
        return {}
    matcher = _candidates()
    buffer = strings[0] if len(strings) == 1 else "\x00".join(strings)
    found = matcher.matching(buffer)
    if not found:
        return {}
    starts: list[int] = []
    offset = 0
    for text in strings:
        starts.append(offset)
        offset += len(text) + 1
    view = None if buffer.isascii() else ascii_view(buffer)  # made once for every rule's finder
    return marks_in(strings, buffer, starts, view, matcher, found, 0)


def marks_in(
    strings: list[str],
    buffer: str,
    starts: list[int],
    view: bytes | None,
    matcher: MultiMatcher,
    found: list[int],
    base: int,
) -> dict[int, list[tuple[int, int, int]]]:
    """The marks of candidate rules a pass already reported, located in the pass's buffer.

    Args:
        strings: the walked strings, joined by NUL in `buffer` (`buffer` is the string itself when there is one).
        buffer: what the pass scanned.
        starts: offset of each string in `buffer`.
        view: `buffer` as the finders read it (`ascii_view` of it, or its ASCII bytes); None: made here.
        matcher: the matcher that holds the candidate rules at `base` onwards.
        found: the candidate rules the pass reported, numbered from 0 (`CANDIDATE_RULES` order).
        base: index of the first candidate rule in `matcher`.
    """
    out: dict[int, list[tuple[int, int, int]]] = {}
    for rule in found:
        for n, m in enumerate(matcher.finditer(base + rule, buffer, view)):
            if n >= _MARKS_PER_RULE:
                break
            if rule in _NOT_HEX_RULES and _NOT_ENCODED.fullmatch(m.group(0)):
                continue  # hashes, ids and identifiers look like base64 and l33t; they hide nothing
            i = bisect.bisect_right(starts, m.start()) - 1
            end = min(m.end() - starts[i], len(strings[i]))
            out.setdefault(i, []).append((rule, m.start() - starts[i], end))
    return out


_NOT_ENCODED: Final = re.compile(r"[0-9a-fA-F\s]+|[a-z_]+|[A-Z_]+|_*[a-z]+(?:[A-Z][a-z0-9]*)+")
_NOT_HEX_RULES: Final = frozenset(i for i, r in enumerate(_CANDIDATES) if r.type in ("base64", "leet"))


def _normalise_windows(text: str, spans: list[tuple[int, int, int]]) -> str | None:
    """The marked windows of `text` (segments plus `_CONTEXT` characters each side), normalised; None if unchanged."""
    windows: list[list[int]] = []
    for _, start, end in sorted(spans, key=lambda s: s[1]):
        low, high = max(0, start - _CONTEXT), min(len(text), end + _CONTEXT)
        if windows and low <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], high)
        else:
            windows.append([low, high])
    kinds = {_CANDIDATES[rule].type for rule, _, _ in spans}
    rules = sorted({rule for rule, _, _ in spans})
    originals = [text[low:high] for low, high in windows[:_WINDOWS_PER_STRING]]
    cleaned = [_normalise(window, kinds, rules) for window in originals]
    return "\n".join(cleaned) if cleaned != originals else None


def _normalise(text: str, kinds: set[str], rules: list[int]) -> str:
    out = text
    if "basic" in kinds:  # before base64 decoding, which would decode the credentials without naming them
        out = _BASIC.sub(_basic_password, out)
    for index in rules:
        kind = _CANDIDATES[index].type
        if kind in ("base64", "hex"):
            out = _decode_segments(out, kind, _candidates("re"), index)
    if "percent" in kinds and "%" in out:
        out = urllib.parse.unquote(out)
    if "unicode_escape" in kinds:
        out = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), out)
    if "entity" in kinds:
        out = html.unescape(out)
    if "invisible" in kinds:
        out = _INVISIBLE.sub("", out)
    if "confusable" in kinds:
        out = unicodedata.normalize("NFKC", out.translate(_CONFUSABLES))
    if "spaced" in kinds:
        out = _SPACED.sub(lambda m: re.sub(r"[ .*_|-]", "", m.group(0)), out)
    if "leet" in kinds:
        out = _LEET_WORD.sub(_unleet, out)
    return out


def _unleet(m: re.Match[str]) -> str:
    word = m.group(0)
    return word.translate(_LEET) if sum(ch.isalpha() for ch in word) >= 2 else word


def _key_text(key: str) -> str:
    """A property name as words: `ignore_all_previous`, `ignoreAllPrevious` -> `ignore all previous`."""
    return _CAMEL.sub(" ", _KEY_SEPARATORS.sub(" ", key))


_KEY_SEPARATORS: Final = re.compile(r"[_\-.]+")
_CAMEL: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def _decode_segments(text: str, kind: str, matcher: MultiMatcher, index: int) -> str:
    parts: list[str] = []
    cursor = 0
    for m in matcher.finditer(index, text):
        decoded = _decode(kind, m.group(0))
        if decoded is not None:
            parts.append(text[cursor : m.start()])
            parts.append(decoded)
            cursor = m.end()
    if not parts:
        return text
    parts.append(text[cursor:])
    return "".join(parts)


def _decode(kind: str, blob: str) -> str | None:
    decoded = decode_utf8(blob, hex_digits=kind == "hex")
    if decoded is None:
        return None
    printable = sum(ch.isprintable() or ch in "\n\r\t" for ch in decoded)
    return decoded if decoded and printable >= 0.95 * len(decoded) else None


def _basic_password(m: re.Match[str]) -> str:
    decoded = _decode("base64", m.group(1))
    if decoded is None or ":" not in decoded:
        return m.group(0)
    user, _, password = decoded.partition(":")
    return f"basic {user} password: {password}"


_NAME_KEYS: Final = frozenset({"name", "Name", "key", "Key", "header", "variable", "var", "field", "id"})
_VALUE_KEYS: Final = frozenset({"value", "Value", "val", "data", "secret", "content"})
"""A setting written as a pair (`{"name": "CLIENT_SECRET", "value": ...}`: environment lists, header lists,
key/value stores): the value under one key, its credential name under a sibling."""


def _fields(strings: list[str], links: list[PathLink]) -> list[View]:
    names = {link[0] for link in links if link is not None}
    by_key = any(type(k) is str and _CREDENTIAL_KEY.search(k) for k in names)
    pairs: dict[int, str] = {}
    if not names.isdisjoint(_NAME_KEYS) and not names.isdisjoint(_VALUE_KEYS):
        for i, link in enumerate(links):
            if link is not None and link[0] in _NAME_KEYS and len(strings[i]) <= 64:
                if _CREDENTIAL_KEY.search(strings[i]):
                    pairs[id(link[1])] = strings[i]
    if not by_key and not pairs:
        return []
    out: list[View] = []
    for i, link in enumerate(links):
        if link is None:
            continue
        name = link[0] if type(link[0]) is str and _CREDENTIAL_KEY.search(link[0]) else None
        if name is None and link[0] in _VALUE_KEYS:
            name = pairs.get(id(link[1]))
        value = strings[i]
        if name is not None and 4 <= len(value) <= 1024 and "\n" not in value:
            out.append(View(f"{name}: {value}", (i,), link))
    return out


_FRAGMENT: Final = re.compile(r"[\w+/=. -]*\d[\w+/=. -]*")
"""A piece of a token or number (a digit, no punctuation of prose, URLs or addresses): what splitting hides."""


def _joined(strings: list[str], links: list[PathLink]) -> list[View]:
    if len(strings) < 2:
        return []
    groups: dict[tuple[object, ...], list[int]] = {}
    for i, link in enumerate(links[:JOIN_SCOPE]):
        if link is None or len(strings[i]) > MAX_JOIN_PART or not _FRAGMENT.fullmatch(strings[i]):
            continue
        parent = link[1]
        if parent is not None and type(parent[0]) is int:
            if parent[0] >= JOIN_ITEMS:
                continue
            key: tuple[object, ...] = ("items", link[0], id(parent[1]))
        else:
            key = ("fields", id(parent))
        groups.setdefault(key, []).append(i)
    out: list[View] = []
    budget = MAX_JOINED_CHARS
    for members in groups.values():
        if len(members) < 2:
            continue
        members = members[:8]
        size = sum(len(strings[i]) for i in members)
        if size > budget:
            break
        budget -= size
        cuts: list[int] = []
        offset = 0
        for i in members[:-1]:
            offset += len(strings[i])
            cuts.append(offset)
        text = "".join(strings[i] for i in members)
        out.append(View(text, tuple(members), links[members[0]], tuple(cuts)))
    return out
