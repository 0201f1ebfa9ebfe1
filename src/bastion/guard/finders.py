"""RE2 finders: a rule's Python pattern turned into an RE2 regex that matches at least wherever the pattern does,
for stage 2 of `MultiMatcher` (where a reported rule matches).

The finder runs on the ASCII view of a text (`matcher.ascii_view`: every non-ASCII character becomes DEL, or a space
if it is a space), so non-ASCII literals are rewritten to what the view shows; look-arounds are removed (a superset)
or, at a pattern's edges, turned into consumed boundary classes; a pattern with back-references gets no finder and
is searched with Python `re`.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Final

from bastion.guard.detector import Rule


def _strip_lookarounds(pattern: str) -> str | None:
    """`pattern` without `(?=..)`, `(?!..)`, `(?<=..)`, `(?<!..)`, for RE2; `None` if it has back-references."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt.isdigit() and nxt != "0" and not in_class:
                return None
            if nxt == "u":
                return None
            out.append("\\z" if nxt == "Z" and not in_class else pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            if pattern[i + 1 : i + 2] == "^":
                out.append("^")
                i += 1
            if pattern[i + 1 : i + 2] == "]":
                out.append("]")
                i += 1
            i += 1
            continue
        if pattern.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
            depth, j, cls = 0, i, False
            while j < n:
                c = pattern[j]
                if c == "\\":
                    j += 2
                    continue
                if cls:
                    cls = c != "]"
                elif c == "[":
                    cls = True
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            i = j + 1
            continue
        if pattern.startswith("(?P=", i):
            return None
        out.append(ch)
        i += 1
    return "".join(out)


_LEADING_NOT_BEFORE: Final = re.compile(r"^\(\?<!(\[(?:\\.|[^\]\\])+\]|\\[wds])\)")
_TRAILING_NOT_AFTER: Final = re.compile(r"\(\?!(\[(?:\\.|[^\]\\])+\]|\\[wds])\)$")


def _negate(cls: str) -> str:
    if cls.startswith("\\"):
        return cls.upper()
    return "[" + cls[2:] if cls.startswith("[^") else "[^" + cls[1:]


def _boundaries(pattern: str) -> str:
    """A leading `(?<![..])` / trailing `(?![..])` becomes a consumed `(?:^|[^..])` / `(?:[^..]|$)` for RE2.

    Stripping them instead would let the finder match inside longer tokens (9 digits inside a hex hash), which is
    correct but floods the confirmation step with candidates.
    """
    lead = _LEADING_NOT_BEFORE.match(pattern)
    if lead is not None and "|" not in pattern[: pattern.find(")") + 1]:
        pattern = f"(?:^|{_negate(lead.group(1))})" + pattern[lead.end() :]
    trail = _TRAILING_NOT_AFTER.search(pattern)
    if trail is not None and _balanced_tail(pattern, trail.start()):
        pattern = pattern[: trail.start()] + f"(?:{_negate(trail.group(1))}|$)"
    return pattern


def _balanced_tail(pattern: str, index: int) -> bool:
    """Whether `index` is at the top level of the pattern (not inside a group or after a `|` alternative)."""
    depth = 0
    i = 0
    while i < index:
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            return False
        i += 1
    return depth == 0


def re2_finder(rule: Rule) -> Any | None:
    """An RE2 regex that matches (at least) wherever the rule's Python pattern does, or `None`."""
    return _re2_finder_for(rule.pattern, rule.flags)


@functools.lru_cache(maxsize=2048)
def _re2_finder_for(pattern: str, flags: int) -> Any | None:
    """Cached by pattern: the same rule sits in the matcher of every direction (and of detectors' own matchers),
    and each RE2 program costs kilobytes; compiled programs are immutable and thread-safe, so one is shared."""
    if not pattern.isascii():
        # The finder runs on the ASCII view, where every non-ASCII character is DEL (or a space).
        pattern = _as_ascii_view(pattern)  # type: ignore[assignment]
        if pattern is None:
            return None
    try:
        import re2
    except ImportError:
        return None
    stripped = _strip_lookarounds(_boundaries(pattern))
    if stripped is None:
        return None
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1
    options.case_sensitive = not flags & re.IGNORECASE
    options.dot_nl = bool(flags & re.DOTALL)
    options.log_errors = False
    inline = "(?m)" if flags & re.MULTILINE else ""
    try:
        return re2.compile((inline + stripped).encode("latin-1"), options)
    except (re2.error, UnicodeEncodeError):
        return None


def _as_ascii_view(pattern: str) -> str | None:
    """`pattern` for the ASCII view: each non-ASCII character becomes what the view shows for it (DEL, or a space
    for a space), so the finder matches (at least) wherever the pattern matches the text. None when a non-ASCII
    character sits in a negated class (`[^…]`), where the same mapping would exclude every non-ASCII character."""
    out: list[str] = []
    in_class = negated = False
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class and ch == "]" and not (pattern[i - 1] == "[" or pattern[i - 2 : i] == "[^"):
            in_class = False
        elif not in_class and ch == "[":
            in_class = True
            negated = pattern[i + 1 : i + 2] == "^"
        if not ch.isascii():
            if in_class and negated:
                return None
            ch = " " if ch.isspace() else "\\x7f"
        out.append(ch)
        i += 1
    return "".join(out)
