"""Canonical names and URIs for policy matching: allow only the exact form, deny every look-alike.

Rules:
- An allow rule matches only a canonical name (ASCII letters, digits, `_ - . /`), compared case-sensitively.
  A case, Unicode-confusable or whitespace variant of a name therefore never matches an allow rule.
- A deny rule matches the name *or its skeleton* (NFKC, case-folded, whitespace and format characters
  removed, common Cyrillic/Greek look-alikes mapped to Latin), so variants of a denied name are denied by the
  same rule and the explanation names it.
- A resource URI is refused outright when its decoded form holds `.`/`..` segments, backslashes or control
  characters, when it percent-encodes an unreserved character or `/` (`%2e`, `%2F`, `%70`), or when its
  scheme is not lowercase. Only the URI exactly as sent is compared with allow globs.
"""

from __future__ import annotations

import re
import unicodedata
from fnmatch import fnmatchcase
from typing import Final
from urllib.parse import unquote

CANONICAL_NAME: Final = re.compile(r"^[A-Za-z0-9_.\-/]{1,256}$")
"""What a tool or prompt name (namespaced) must look like to match an allow rule."""

_CONFUSABLES: Final = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0501\u04bb\u04cf\u03bf"
    "\u03b1\u03bd\u03b9\u03ba\u03c1\u03c4\u03c5\u03c7\u03b5\u2010\u2011\u2012\u2013\u2014\u2212",
    "aeopcyxijsdhloavikptuxe------",
)
"""Look-alike characters NFKC does not fold, mapped to the ASCII they imitate."""

_UNRESERVED_OR_SLASH: Final = re.compile(r"%(2[dDeEfF]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])")
"""Percent-escapes of unreserved characters (ALPHA DIGIT - . _ ~) and of `/`: never needed, often an attack."""

_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_MAX_DECODE_ROUNDS: Final = 3
"""Percent-decoding is repeated this often to see through double encoding (`%252e`)."""


def is_canonical(name: str) -> bool:
    """Whether a namespaced tool or prompt name may match an allow rule at all."""
    return CANONICAL_NAME.fullmatch(name) is not None


def skeleton(text: str) -> str:
    """A folded form under which look-alike variants of a name collide (used by deny rules only)."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(_CONFUSABLES)
    return "".join(
        ch for ch in folded if not ch.isspace() and unicodedata.category(ch) not in ("Cf", "Cc", "Zs")
    )


def allow_matches(name: str, pattern: str) -> bool:
    """Exact, case-sensitive glob match of a canonical name."""
    return is_canonical(name) and fnmatchcase(name, pattern)


def deny_matches(name: str, pattern: str) -> bool:
    """Glob match of the name or of its skeleton against the pattern's skeleton."""
    return fnmatchcase(name, pattern) or fnmatchcase(skeleton(name), skeleton(pattern))


def fully_decoded(uri: str) -> str:
    """Percent-decode until stable (bounded), to see through double encoding."""
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(uri)
        if decoded == uri:
            break
        uri = decoded
    return uri


def uri_problem(uri: str) -> str | None:
    """Why a resource URI is refused before any rule is looked at, or None when it is acceptable."""
    match = _SCHEME.match(uri)
    if match is None:
        return "no scheme"
    if match.group(1) != match.group(1).lower():
        return "scheme not lowercase"
    if _UNRESERVED_OR_SLASH.search(uri) or "%25" in uri:
        return "needless or double percent-encoding"
    decoded = fully_decoded(uri)
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in decoded) or "\\" in decoded:
        return "control, format or backslash characters"
    path = decoded[match.end() :].split("?", 1)[0].split("#", 1)[0]
    if any(segment in (".", "..") for segment in path.split("/")):
        return "dot segments"
    return None


def uri_allow_matches(uri: str, pattern: str) -> bool:
    """Exact glob match of an acceptable URI as sent."""
    return uri_problem(uri) is None and fnmatchcase(uri, pattern)


def uri_deny_matches(uri: str, pattern: str) -> bool:
    """Glob match of the URI as sent or fully decoded, also case-folded."""
    decoded = fully_decoded(uri)
    candidates = {uri, decoded, decoded.casefold()}
    return any(fnmatchcase(c, pattern) or fnmatchcase(c, pattern.casefold()) for c in candidates)
