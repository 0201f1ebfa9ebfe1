r"""`MultiMatcher`: which of many rules match somewhere in a buffer, in one pass over it, and where.

Stage 1, "which rules": one pass of a multi-pattern backend per part (`backends`: Hyperscan, RE2's `Set` or a
plain `re` alternation; parts held once per process, so the request and response directions share the databases
of the rules they have in common).

Stage 2, "where", only for the few rules stage 1 reported: RE2 (a linear-time DFA) finds candidate spans with the
rule's look-arounds removed (a superset), on an ASCII view of the text of the same length (`finders.view_char`:
DEL for a non-ASCII character, a space for a space, `0` for a digit), so offsets stay character offsets. Python
`re` then confirms each candidate *anchored at its position* (`pattern.match(text, pos)`), so the slow engine never
scans the whole text. Rules RE2 cannot take (back-references) are searched with Python `re` directly.

A text that is not ASCII is matched on its view in both stages, with patterns rewritten for it
(`finders.view_pattern`, "wide": non-ASCII literals as the view shows them, `\w` admitting DEL, `\b` dropped),
because byte-level `\w`, `\b` and `\s` do not see a Cyrillic word or a no-break space the way Python does.

Rules:
- Patterns are matched as bytes (UTF-8 with surrogates passed through): a rule's `prefilter`, when set, is written
  for bytes; otherwise its Python pattern is reused, which is safe for ASCII patterns.
- A rule that a backend cannot compile is not dropped: it is checked with Python `re` on every scan ("always" rules),
  and the build logs its index so it can be fixed.
"""

from __future__ import annotations

import bisect
import codecs
import itertools
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, cast

from bastion.guard.backends import BACKENDS, Backend, joined, part, placed
from bastion.guard.detector import Rule
from bastion.guard.finders import re2_finder, view_char

logger = logging.getLogger("bastion.guard.matcher")

_T = TypeVar("_T")


_SEPARATORS: Final = (b"\x0b", b"\x1c", b"\x1d", b"\x1e", b"\x1f")
_AS_SPACES: Final = bytes.maketrans(b"".join(_SEPARATORS), b" " * len(_SEPARATORS))


def _spaced(data: bytes) -> bytes:
    """`data` with the vertical tab and the four ASCII information separators as spaces.

    Python's `\\s` matches them; Hyperscan's and RE2's do not, so "Ignore\\x1fall\\x1fprevious instructions" was
    confirmed by no stage while the rule, run by Python, matches it. As spaces they are what every `\\s` sees
    (a pattern's literal space also sees them: a candidate more, which Python confirms). No rule looks for them.
    """
    for separator in _SEPARATORS:
        if separator in data:  # a memchr each: the common text has none and is not copied
            return data.translate(_AS_SPACES)
    return data


def _encode(text: str) -> bytes:
    return _spaced(text.encode("utf-8", "surrogatepass"))


def _ascii_view_handler(error: UnicodeError) -> tuple[str, int]:
    assert isinstance(error, UnicodeEncodeError)
    chunk = error.object[error.start : error.end]
    return "".join(map(view_char, chunk)), error.end


codecs.register_error("bastion-ascii-view", _ascii_view_handler)


def ascii_view(text: str) -> bytes:
    """`text` as ASCII bytes of the same length, each non-ASCII character as `finders.view_char` shows it and each
    ASCII separator Python counts as a space as a space (`_spaced`); for an ASCII text, its own bytes but those."""
    return _spaced(text.encode("ascii", "bastion-ascii-view"))


_MAX_TRIES: Final = 64
"""Positions tried inside one candidate span before giving up on it (bounds adversarial spans)."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One rule set compiled twice: for the UTF-8 bytes of an ASCII text, and for the ASCII view of any other text
    (`wide`), where Python's Unicode `\\w`, `\\b` and non-ASCII literals need the view-aware patterns of
    `finders.view_pattern`; stage 1 of a non-ASCII text runs the wide set alone. The stage-2 programs are built on
    first use (`_OnFirstUse`)."""

    impl: Backend
    always: tuple[int, ...]
    regexes: _OnFirstUse[re.Pattern[str]]
    finders: _OnFirstUse[Any | None]
    wide_impl: Backend | None
    wide_always: tuple[int, ...]
    wide_finders: _OnFirstUse[Any | None]
    twins: dict[int, tuple[int, ...]]
    """For a rule compiled once on behalf of identical rules (several detectors share rule packs), those others."""


_UNSET: Final = object()


class _OnFirstUse(Generic[_T]):
    """Per rule, a stage-2 program (its RE2 finder for an ASCII text or for the view of another, or its Python
    confirmation regex), built the first time stage 2 needs it.

    Stage 2 runs only for the rules stage 1 reports, and most rules (attack classes in eight languages) are never
    reported on ordinary traffic: compiling every program up front held about 7.5 MB of RE2 programs (552 of them
    with every detector on) and the Python regexes of rules that never ran. A program is immutable once built; two
    threads that build the same one at once each get a correct one, and the last stored is kept.
    """

    __slots__ = ("_build", "_built", "_rules")

    def __init__(self, rules: tuple[Rule, ...], build: Callable[[Rule], _T]) -> None:
        self._rules = rules
        self._build = build
        self._built: list[Any] = [_UNSET] * len(rules)

    def __getitem__(self, index: int) -> _T:
        program = self._built[index]
        if program is _UNSET:
            program = self._built[index] = self._build(self._rules[index])
        return cast(_T, program)


_Key = tuple[str | None, tuple[int, ...], tuple[tuple[str, int, str | None], ...]]
"""(backend, where its parts begin, every rule's pattern, flags and prefilter): what a compiled set depends on."""
_COMPILED: dict[_Key, _Compiled] = {}
"""Compiled rule sets, shared by every matcher with the same rules (a Hyperscan build takes a second or two;
databases are read-only and each thread brings its own scratch)."""
_COMPILED_LIMIT: Final = 16
_CACHE_LOCK = threading.Lock()
_BUILDING: dict[_Key, Future[_Compiled]] = {}
"""Rule sets being compiled now, so a second thread asking for the same set waits for the first."""


def _wide_finder(rule: Rule) -> Any | None:
    """The rule's finder for the view of a non-ASCII text."""
    return re2_finder(rule, wide=True)


def _compile(rules: tuple[Rule, ...], backend: str | None, splits: tuple[int, ...]) -> _Compiled:
    first: dict[tuple[str, int, str | None], int] = {}
    twins: dict[int, list[int]] = {}
    for index, rule in enumerate(rules):
        seen = first.setdefault((rule.pattern, rule.flags, rule.prefilter), index)
        if seen != index:
            twins.setdefault(seen, []).append(index)
    indices = sorted(first.values())
    bounds = [0, *splits, len(rules)]
    groups = [g for g in ([i for i in indices if lo <= i < hi] for lo, hi in itertools.pairwise(bounds)) if g]
    groups = groups or [[]]  # no rules: an empty backend, which matches nothing
    candidates = (backend,) if backend else BACKENDS
    for name in candidates:
        try:
            parts = [(group, part(name, [rules[i] for i in group])) for group in groups]
        except ImportError:
            continue
        narrow = [placed(held.impl, group) for group, held in parts]
        wide = [placed(held.wide_impl, group) for group, held in parts if held.wide_impl is not None]
        return _Compiled(
            impl=joined(narrow),
            always=tuple(sorted(group[i] for group, held in parts for i in held.always)),
            regexes=_OnFirstUse(rules, Rule.compiled),
            finders=_OnFirstUse(rules, re2_finder),
            wide_finders=_OnFirstUse(rules, _wide_finder),
            wide_impl=joined(wide) if wide and len(wide) == len(parts) else None,
            wide_always=tuple(sorted(group[i] for group, held in parts for i in held.wide_always)),
            twins={k: tuple(v) for k, v in twins.items()},
        )
    raise ValueError(f"no matcher backend available among {candidates}")


class MultiMatcher:
    """All rules of all active detectors, compiled once; `matching(text)` is one pass over the text per part."""

    def __init__(
        self, rules: Sequence[Rule], *, backend: str | None = None, parts: Sequence[int] = ()
    ) -> None:
        """Compile `rules` with the first backend that imports (or the named one).

        Args:
            rules: every rule, indexed by position.
            backend: force `hyperscan`, `re2` or `re` (tests, benchmarks); default tries them in order.
            parts: rule indices where a new part begins: each part is compiled as databases of its own, held
                once per process by every matcher with a part of the same rules (stage 1 makes one pass per
                part, which costs about what one pass over them all does); empty: one database for all.
        """
        self.rules: tuple[Rule, ...] = tuple(rules)
        splits = tuple(sorted({p for p in parts if 0 < p < len(self.rules)}))
        key = (backend, splits, tuple((r.pattern, r.flags, r.prefilter) for r in self.rules))
        with _CACHE_LOCK:
            compiled = _COMPILED.get(key)
            building = _BUILDING.get(key)
            owner = compiled is None and building is None
            if owner:
                building = _BUILDING[key] = Future()
        if compiled is None and not owner:
            assert building is not None
            compiled = building.result()  # another thread compiles the same rules (two directions alike)
        elif compiled is None:
            assert building is not None
            try:
                compiled = _compile(self.rules, backend, splits)
            except BaseException as exc:
                building.set_exception(exc)
                raise
            finally:
                with _CACHE_LOCK:
                    _BUILDING.pop(key, None)
                    if compiled is not None:
                        _COMPILED[key] = compiled
                    while len(_COMPILED) > _COMPILED_LIMIT:
                        _COMPILED.pop(next(iter(_COMPILED)))
            building.set_result(compiled)
        self._sets = compiled
        first = list(range(len(self.rules)))
        for index, others in compiled.twins.items():
            for other in others:
                first[other] = index
        self._first: tuple[int, ...] = tuple(first)
        self._impl, self._always, self.regexes = compiled.impl, compiled.always, compiled.regexes
        self.backend: str = self._impl.name
        """The backend in use, for logs and benchmarks."""

    def matching(self, text: str, view: bytes | None = None) -> list[int]:
        """Indices of the rules that may match in `text`, in rule order.

        Args:
            text: the text.
            view: `ascii_view(text)` when the caller already made it (it keeps it for stage 2).
        """
        if not self.rules:
            return []
        always: tuple[int, ...] = self._always
        wide = self._sets.wide_impl
        if wide is not None and not text.isascii():
            # Every rule has a view pattern or is searched by Python (`wide_always`): one pass is enough.
            found = wide.matching(view if view is not None else ascii_view(text))
            always = always + self._sets.wide_always
        else:
            found = self._impl.matching(_encode(text))
        for index in always:
            if index not in found and self.regexes[index].search(text):
                found.add(index)
        twins = self._sets.twins
        if twins:
            for index in [i for i in found if i in twins]:
                found.update(twins[index])
        return sorted(found)

    def twin_of(self, index: int) -> int:
        """The rule compiled on behalf of rule `index` (itself, unless an identical rule came first): stage 2 of
        identical rules is the same search, so a caller does it once."""
        return self._first[index]

    def finditer(self, index: int, text: str, view: bytes | None = None) -> Iterator[re.Match[str]]:
        """Non-overlapping matches of rule `index` in `text`, like `re.finditer`, found the fast way.

        Args:
            index: the rule.
            text: the text.
            view: `ascii_view(text)` when the caller already made it (several rules on one text).
        """
        regex = self.regexes[index]
        narrow = text.isascii()
        finder = (self._sets.finders if narrow else self._sets.wide_finders)[index]
        if finder is None:
            yield from regex.finditer(text)
            return
        data = view if view is not None else ascii_view(text)
        size = len(data)
        search = _span_search(finder)
        pos = scan = 0
        while scan <= size:
            start, end = search(data, scan, size)
            if start < 0:
                return
            scan = end if end > start else start + 1  # where the finder's own iteration goes on
            if end <= pos:
                continue
            m = _confirm(regex, text, max(start, pos), min(max(end, start + 1), start + _MAX_TRIES))
            if m is not None:
                yield m
                pos = m.end()
                scan = pos  # the candidate may hold another match after this one ("35941767—8505142")

    def finditer_joined(
        self, index: int, buffer: str, view: bytes | None, starts: Sequence[int], strings: Sequence[str]
    ) -> Iterator[tuple[int, re.Match[str]]]:
        """Matches of rule `index` in each of `strings`, found in one pass over `buffer` (them joined by a separator).

        Each candidate the finder reports in the buffer is confirmed on the string it starts in, so a match never
        runs across a separator, and the search resumes at the next string after a candidate that did: a match
        is the same as in a scan of that string alone (`^` and look-arounds see the string's own ends).

        Args:
            index: the rule.
            buffer: `strings` joined by a one-character separator.
            view: `buffer` as ASCII bytes (`ascii_view(buffer)` when it is not ASCII); None: made here.
            starts: offset of each string in `buffer`.
            strings: the strings.

        Yields:
            (string index, match in that string).
        """
        regex = self.regexes[index]
        narrow = buffer.isascii()
        finder = (self._sets.finders if narrow else self._sets.wide_finders)[index]
        if finder is None:
            yield from self._python_joined(regex, buffer, starts, strings)
            return
        data = view if view is not None else ascii_view(buffer)
        size = len(data)
        pos = 0
        search = _span_search(finder)
        while pos <= size:
            start, end = search(data, pos, size)
            if start < 0:
                return
            stop = min(max(end, start + 1), start + _MAX_TRIES)
            i = bisect.bisect_right(starts, start) - 1
            found = None
            while True:  # the strings the tried positions fall in (a candidate may start on a separator)
                base, text = starts[i], strings[i]
                limit = base + len(text)
                low, high = max(start, base), min(stop, limit)
                if low < high:
                    found = _confirm(regex, text, low - base, high - base)
                if found is not None or stop <= limit + 1 or i + 1 >= len(strings):
                    break
                i += 1
            if found is not None:
                yield i, found
                pos = base + found.end()
            else:
                pos = max(end, start + 1)
            if pos > limit:
                pos = limit + 1  # the next string starts after the separator
            if pos <= start:
                pos = start + 1

    @staticmethod
    def _python_joined(
        regex: re.Pattern[str], buffer: str, starts: Sequence[int], strings: Sequence[str]
    ) -> Iterator[tuple[int, re.Match[str]]]:
        """`finditer_joined` for a rule only Python can search: one scan of the buffer, confirmed per string."""
        rerun_from = 0
        for m in regex.finditer(buffer):
            i = bisect.bisect_right(starts, m.start()) - 1
            if i < rerun_from:
                continue
            base = starts[i]
            if m.end() <= base + len(strings[i]):
                inside = regex.match(strings[i], m.start() - base)
                if inside is not None and inside.end() > inside.start():
                    yield i, inside
                continue
            # Ran across a separator: the strings it covered are searched one by one.
            last = bisect.bisect_right(starts, m.end() - 1) - 1
            for j in range(i, last + 1):
                for inner in regex.finditer(strings[j]):
                    yield j, inner
            rerun_from = last + 1

    def search_all(self, text: str) -> list[tuple[int, re.Match[str]]]:
        """Every match of every rule in `text`: stage 1, then stage 2 for the rules it reported."""
        hits = self.matching(text)
        if not hits:
            return []
        view = None if text.isascii() else ascii_view(text)
        return [(i, m) for i in hits for m in self.finditer(i, text, view)]


def _span_search(finder: Any) -> Any:
    """`(data, pos, end) -> (start, end)` of the finder's next match, `(-1, -1)` when none: RE2's own call, without
    the match objects of the Python wrapper (a few microseconds per candidate on a record list)."""
    raw = getattr(finder, "_regexp", None)
    anchor = getattr(getattr(sys.modules.get("re2"), "_Anchor", None), "UNANCHORED", None)
    if raw is not None and anchor is not None:
        match = raw.Match

        def search(data: bytes, pos: int, end: int) -> tuple[int, int]:
            span: tuple[int, int] = match(anchor, data, pos, end)[0]
            return span

        return search

    def fallback(data: bytes, pos: int, end: int) -> tuple[int, int]:
        found = finder.search(data, pos, end)
        return (-1, -1) if found is None else found.span()

    return fallback


_SEARCH_SPAN: Final = 512
"""Up to this many characters after a candidate, one `search` (a loop in C) replaces a `match` per position."""


def _confirm(regex: re.Pattern[str], text: str, low: int, high: int) -> re.Match[str] | None:
    """The first non-empty match of `regex` in `text` that starts in [low, high), like trying `match` at each."""
    if len(text) - low <= _SEARCH_SPAN:
        m = regex.search(text, low)
        while m is not None and m.start() < high:
            if m.end() > m.start():
                return m
            m = regex.search(text, m.start() + 1)
        return None
    for at in range(low, high):
        m = regex.match(text, at)
        if m is not None and m.end() > m.start():
            return m
    return None


class ShiftedMatch:
    """A match found in a joined buffer, seen from the string it lies in: offsets are shifted by `base`.

    Offers the part of `re.Match` detectors use (`group`, `groupdict`, `start`, `end`, `span`, `lastindex`).
    """

    __slots__ = ("_base", "_m")

    def __init__(self, match: re.Match[str], base: int) -> None:
        self._m = match
        self._base = base

    def group(self, *groups: int | str) -> Any:
        return self._m.group(*groups)

    def __getitem__(self, group: int | str) -> Any:
        return self._m.group(group)

    def groupdict(self, default: Any = None) -> dict[str, Any]:
        return self._m.groupdict(default)

    def start(self, group: int | str = 0) -> int:
        start = self._m.start(group)
        return start - self._base if start >= 0 else -1

    def end(self, group: int | str = 0) -> int:
        end = self._m.end(group)
        return end - self._base if end >= 0 else -1

    def span(self, group: int | str = 0) -> tuple[int, int]:
        return self.start(group), self.end(group)

    @property
    def lastindex(self) -> int | None:
        return self._m.lastindex
