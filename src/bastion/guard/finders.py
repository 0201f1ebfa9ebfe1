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
            _, end = _alternatives(pattern, i + (4 if pattern.startswith("(?<", i) else 3))
            i = end if end >= 0 else n
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


def re2_finder(rule: Rule, *, wide: bool = False) -> Any | None:
    """An RE2 regex that matches (at least) wherever the rule's Python pattern does, or `None`.

    `wide`: for the view of a text that is not ASCII, where `\\b` and `\\w` must also see the characters the view
    turned into DEL (a Cyrillic word is a word to Python); on an ASCII text the narrow finder is exact and faster.
    """
    return _re2_finder_for(rule.pattern, rule.flags, wide)


@functools.lru_cache(maxsize=4096)
def _re2_finder_for(pattern: str, flags: int, wide: bool) -> Any | None:
    """Cached by pattern: the same rule sits in the matcher of every direction (and of detectors' own matchers),
    and each RE2 program costs kilobytes; compiled programs are immutable and thread-safe, so one is shared."""
    viewed = view_pattern(pattern, wide=wide)
    if viewed is None:
        return None
    if wide and viewed == view_pattern(pattern, wide=False):
        return _re2_finder_for(pattern, flags, False)  # nothing differs: one program serves both
    try:
        import re2
    except ImportError:
        return None
    stripped = _strip_lookarounds(_boundaries(viewed))
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


_ASCII_FOLDS: Final = {"\u212a": "k", "\u017f": "s", "\u0131": "i", "\u0130": "i"}
"""Non-ASCII characters Python's IGNORECASE matches to ASCII letters (Kelvin sign, long s, dotless and dotted i):
the view shows them as those letters, so an ASCII rule still sees them."""


def view_char(ch: str) -> str:
    """What the ASCII view shows for a non-ASCII character: a space for a space, `0` for a decimal digit (Python's
    `\\d` matches every script's digits), the ASCII letter IGNORECASE folds it to, else DEL."""
    if ch.isspace():
        return " "
    if ch.isdecimal():
        return "0"
    return _ASCII_FOLDS.get(ch, "\x7f")


def _literal(ch: str) -> str:
    """`ch` written as a pattern literal for RE2 (escaped when it is not a letter or digit)."""
    return ch if ch.isalnum() and ch.isascii() else f"\\x{ord(ch):02x}"


_ESCAPED_CHAR: Final = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8}))")


def view_pattern(pattern: str, *, wide: bool, is_bytes: bool = False) -> str | None:
    """`pattern` rewritten for the ASCII view of a text (`matcher.ascii_view`), matching at least wherever it matches
    the text itself, or None when that cannot be written (then Python searches the text).

    Non-ASCII literals (and their `\\x`/`\\u` escapes; in a byte-level prefilter, runs of `\\xNN` escapes that spell
    UTF-8) become their view characters; in a negated class they are dropped, so the class still admits what the view
    shows for them. `wide` also drops `\\b`/`\\B` and lets `\\w` match DEL: RE2's ASCII word boundary cannot see
    a Cyrillic word, and removing an assertion only adds candidates, which Python confirms; a `\\b` beside an ASCII
    word character is kept, since there the view's boundary holds wherever Python's does (`_ascii_word_at`). Inside
    a negative look-around the same reasoning runs backwards (what it must not see shrinks to what is surely there).
    """
    out: list[str] = []
    groups: list[bool] = []  # per open group: whether it is a negative look-around
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        inverted = sum(groups) % 2 == 1
        if ch == "[":
            done = _view_class(pattern, i, wide=wide, is_bytes=is_bytes, inverted=inverted)
            if done is None:
                return None
            text, i = done
            out.append(text)
            continue
        if ch == "(":
            groups.append(pattern.startswith(("(?!", "(?<!"), i))
        elif ch == ")" and groups:
            groups.pop()
        if ch != "\\":
            out.append(ch if ch.isascii() else _NOTHING if inverted else _literal(view_char(ch)))
            i += 1
            continue
        m = _ESCAPED_CHAR.match(pattern, i)
        if m is None:
            pair = pattern[i : i + 2]
            i += 2
            if wide and pair in ("\\b", "\\B"):
                # Beside an ASCII word character the view's boundary holds wherever Python's does.
                beside = _ascii_word_at(pattern, i) or _ascii_word_ends(pattern, i - 2)
                if pair == "\\b" and not inverted and beside:
                    out.append(pair)
                continue
            out.append("[\\w\\x7f]" if wide and pair == "\\w" and not inverted else pair)
            continue
        code = int(next(g for g in m.groups() if g is not None), 16)
        if not (is_bytes and m.group(1) is not None and code >= 0x80):
            view = _NOTHING if inverted else _literal(view_char(chr(code)))
            out.append(m.group(0) if code < 0x80 else view)
            i = m.end()
            continue
        raw = bytearray()
        while m is not None and m.group(1) is not None and int(m.group(1), 16) >= 0x80:
            raw.append(int(m.group(1), 16))
            i = m.end()
            m = _ESCAPED_CHAR.match(pattern, i)
        try:
            chars = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        out.append(_NOTHING if inverted else "".join(_literal(view_char(c)) for c in chars))
    return "".join(out)


def _ascii_word_ends(pattern: str, index: int) -> bool:
    """Whether the atom right before `index` (where a `\\b` starts) is a plain ASCII letter, digit or `_`.

    Python's boundary after such a character depends only on the character after it; the view shows that character
    as itself, a space, `0`, a folded letter, or DEL for every other non-ASCII one, a non-word character: so the
    view's boundary holds wherever Python's does (and after a non-ASCII letter too, a candidate more).
    """
    if index < 1:
        return False
    ch = pattern[index - 1]
    if not (ch.isascii() and (ch.isalnum() or ch == "_")):
        return False
    # Not the tail of an escape: `\\x20` is a space and `\\u00e9` a non-ASCII letter, whatever their last digit.
    return _ESCAPE_TAIL.search(pattern, max(0, index - 10), index) is None


_ESCAPE_TAIL: Final = re.compile(r"\\(?:x[0-9A-Fa-f]{0,2}|u[0-9A-Fa-f]{0,4}|U[0-9A-Fa-f]{0,8}|[0-7]{1,3}|.)$")


_OPTIONAL: Final = re.compile(r"[?*]|\{0?[,}]")
"""A quantifier that lets the atom before it be absent (`?`, `*`, `{0,n}`, `{,n}`)."""
_WORD_CLASS: Final = re.compile(r"\[[A-Za-z0-9_-]+\]")
_INLINE_FLAGS: Final = re.compile(r"\(\?[aiLmsux]+\)")


def _ascii_word_at(pattern: str, index: int) -> bool:
    """Whether every match of the pattern's atom at `index` starts with an ASCII letter, digit or `_` (then a `\\b`
    right before it holds on the view wherever it holds for Python, as in `_ascii_word_ends`). Conservative: an
    atom it cannot read says False, and the boundary is dropped as before."""
    flags = _INLINE_FLAGS.match(pattern, index)
    if flags is not None:
        return _ascii_word_at(pattern, flags.end())
    if index >= len(pattern):
        return False
    ch = pattern[index]
    if ch.isascii() and (ch.isalnum() or ch == "_"):
        return _OPTIONAL.match(pattern, index + 1) is None
    if ch == "[":
        cls = _WORD_CLASS.match(pattern, index)
        return cls is not None and _OPTIONAL.match(pattern, cls.end()) is None
    if ch != "(":
        return False
    if pattern.startswith("(?:", index):
        body = index + 3
    elif pattern.startswith("(?P<", index):
        body = pattern.find(">", index) + 1
    elif pattern.startswith("(?", index):
        return (
            False  # a look-around, a back-reference or a conditional: not an atom that consumes a character
        )
    else:
        body = index + 1
    alternatives, end = _alternatives(pattern, body)
    if end < 0 or _OPTIONAL.match(pattern, end) is not None:
        return False
    return all(_ascii_word_at(alternative, 0) for alternative in alternatives)


def _alternatives(pattern: str, start: int) -> tuple[list[str], int]:
    """The top-level alternatives of the group whose body starts at `start`, and the index after its `)` (-1 when
    it does not close)."""
    parts: list[str] = []
    depth, i, begin, in_class = 0, start, start, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            if pattern.startswith(("[]", "[^]"), i):
                i += 2 if pattern[i + 1] == "]" else 3
                continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                parts.append(pattern[begin:i])
                return parts, i + 1
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(pattern[begin:i])
            begin = i + 1
        i += 1
    return parts, -1


_NOTHING: Final = "[^\\x00-\\x7f]"
"""Matches nothing on the view: a non-ASCII literal inside a negative look-around, which must then always pass."""


def _class_atoms(pattern: str, i: int) -> tuple[list[tuple[str, str | None]], int] | None:
    """The members of the class opening at `i` as `(source, character or None for a class escape)`, and the index
    after its `]`; None when it does not close."""
    atoms: list[tuple[str, str | None]] = []
    n = len(pattern)
    first = True
    while i < n:
        ch = pattern[i]
        if ch == "]" and not first:
            return atoms, i + 1
        first = False
        if ch != "\\":
            atoms.append((ch, ch))
            i += 1
            continue
        m = _ESCAPED_CHAR.match(pattern, i)
        if m is not None:
            atoms.append((m.group(0), chr(int(next(g for g in m.groups() if g is not None), 16))))
            i = m.end()
            continue
        pair = pattern[i : i + 2]
        atoms.append((pair, None if pair[1:] in "wWdDsS" else pair[1:]))
        i += 2
    return None


def _range_view(low: int, high: int) -> str:
    """Class members for what the view shows of the characters `low..high` (all of them for a very wide range)."""
    if high - low > 4096:
        shown = {" ", "0", "\x7f", *_ASCII_FOLDS.values()}
    else:
        shown = {view_char(chr(c)) for c in range(low, high + 1)}
    return "".join(_literal(c) for c in sorted(shown))


def _view_class(
    pattern: str, i: int, *, wide: bool, is_bytes: bool, inverted: bool = False
) -> tuple[str, int] | None:
    """The class opening at `i` for the view, and the index after it; None when it cannot be written.

    `inverted`: the class sits in a negative look-around, so it must match less, not more: it is treated like a
    negated class (non-ASCII members dropped, `\\w` without DEL)."""
    written_negated = pattern.startswith("[^", i)
    negated = written_negated != inverted
    parsed = _class_atoms(pattern, i + (2 if written_negated else 1))
    if parsed is None:
        return None
    atoms, end = parsed
    members: list[str] = []
    k = 0
    while k < len(atoms):
        source, char = atoms[k]
        if is_bytes and char is not None and source.startswith("\\x") and ord(char) >= 0x80:
            return None  # a class of UTF-8 bytes has no character meaning
        high_source, high = atoms[k + 2] if k + 2 < len(atoms) and atoms[k + 1][0] == "-" else ("", None)
        if char is not None and high is not None:
            k += 3
            if char.isascii() and high.isascii():
                members.append(f"{source}-{high_source}")
            elif negated:
                return None  # the view chars of the characters above the range would have to stay admitted
            else:
                if char.isascii():
                    members.append(f"{source}-\\x7e")
                members.append(_range_view(max(ord(char), 0x80), ord(high)))
            continue
        k += 1
        if char is None:
            members.append("\\w\\x7f" if wide and source == "\\w" and not negated else source)
        elif char.isascii():
            members.append(source)
        elif not negated:
            members.append(_literal(view_char(char)))
    if not members:
        return ("[\\x00-\\x7f]" if written_negated else _NOTHING), end
    return ("[^" if written_negated else "[") + "".join(members) + "]", end
