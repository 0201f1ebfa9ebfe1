r"""`MultiMatcher`: which of many rules match somewhere in a buffer, in one pass over it, and where.

Stage 1, "which rules": one pass of a multi-pattern backend, fastest first: Hyperscan (each rule reported at most
once), RE2's `Set`, or a plain `re` alternation; one pass per part when the rules are compiled in parts, so that
matchers with rules in common (the request and response directions) hold one copy of those databases. A backend
may over-report (prefilter mode) but never under-report, except the `re` fallback, which can miss a rule whose
match starts where another rule's match already did.

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
- Hyperscan databases are compiled by a child Python and loaded serialized (in process only when no child can),
  so the compiler's memory never stays in the gateway (`hs_compile`).
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
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Generic, Protocol, TypeVar, cast

from bastion.guard.detector import Rule
from bastion.guard.finders import re2_finder, view_char, view_pattern
from bastion.guard.hs_compile import compile_in_child, release_freed_heap

logger = logging.getLogger("bastion.guard.matcher")

_T = TypeVar("_T")

_LOOKAROUND: Final = re.compile(r"\(\?<?[=!]|\\[1-9]|\(\?P=")
"""Constructs Hyperscan rejects outside prefilter mode."""


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


def _source(rule: Rule) -> str:
    return rule.prefilter if rule.prefilter is not None else rule.pattern


class _Backend(Protocol):
    name: str

    def matching(self, data: bytes) -> set[int]: ...


class _HyperscanBackend:
    name = "hyperscan"

    def __init__(self, rules: Sequence[Rule], indices: Sequence[int]) -> None:
        import hyperscan

        self._hs = hyperscan
        good: list[tuple[int, bytes, int]] = []
        self.failed: list[int] = []
        for index in indices:
            rule = rules[index]
            source = _source(rule)
            flags = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY
            if rule.flags & re.IGNORECASE:
                flags |= hyperscan.HS_FLAG_CASELESS
            if rule.flags & re.DOTALL:
                flags |= hyperscan.HS_FLAG_DOTALL
            if rule.flags & re.MULTILINE:
                flags |= hyperscan.HS_FLAG_MULTILINE
            if rule.prefilter is None and _LOOKAROUND.search(source):
                flags |= hyperscan.HS_FLAG_PREFILTER
            good.append((index, source.encode("utf-8"), flags))
        self._db = self._compile(good)
        self._local = threading.local()

    def _compile(self, entries: list[tuple[int, bytes, int]]) -> Any:
        hs = self._hs
        try:
            db = compile_in_child(entries)
            return db if db is not None else self._build(entries)
        except hs.error:
            pass
        # Find the rules Hyperscan refuses, retry them in prefilter mode, and leave the rest to Python.
        kept: list[tuple[int, bytes, int]] = []
        for index, source, flags in entries:
            for attempt in (flags, flags | hs.HS_FLAG_PREFILTER):
                try:
                    self._build([(index, source, attempt)])
                except hs.error:
                    continue
                kept.append((index, source, attempt))
                break
            else:
                self.failed.append(index)
        if self.failed:
            logger.warning("hyperscan could not compile rules %s; they run in Python", self.failed)
        return self._build(kept) if kept else None

    def _build(self, entries: list[tuple[int, bytes, int]]) -> Any:
        hs = self._hs
        db = hs.Database(mode=hs.HS_MODE_BLOCK)
        db.compile(
            expressions=[e[1] for e in entries],
            ids=[e[0] for e in entries],
            elements=len(entries),
            flags=[e[2] for e in entries],
        )
        return db

    def matching(self, data: bytes) -> set[int]:
        if self._db is None:
            return set()
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            # One scratch space per thread: Hyperscan scratch must never be shared by concurrent scans.
            scratch = self._hs.Scratch(self._db)
            self._local.scratch = scratch
        found: set[int] = set()

        def on_match(rule_id: int, start: int, end: int, flags: int, context: object) -> None:
            found.add(rule_id)

        self._db.scan(data, match_event_handler=on_match, scratch=scratch)
        return found


class _Re2Backend:
    name = "re2"

    def __init__(self, rules: Sequence[Rule], indices: Sequence[int]) -> None:
        import re2

        options = re2.Options()
        options.encoding = re2.Options.Encoding.LATIN1  # byte semantics, like Hyperscan's block mode
        self._set = re2.Set.SearchSet(options)
        self._ids: list[int] = []
        self.failed: list[int] = []
        for index in indices:
            rule = rules[index]
            inline = "".join(
                letter
                for flag, letter in ((re.IGNORECASE, "i"), (re.DOTALL, "s"), (re.MULTILINE, "m"))
                if rule.flags & flag
            )
            source = _source(rule)
            if rule.prefilter is None and _LOOKAROUND.search(source):
                self.failed.append(index)
                continue
            try:
                self._set.Add(((f"(?{inline})" if inline else "") + source).encode("utf-8"))
            except re2.error:
                self.failed.append(index)
                continue
            self._ids.append(index)
        self._set.Compile()

    def matching(self, data: bytes) -> set[int]:
        if not self._ids:
            return set()
        return {self._ids[i] for i in self._set.Match(data) or ()}


class _ReBackend:
    """Last resort: one alternation of named groups; a rule shadowed by another at the same start is missed."""

    name = "re"

    def __init__(self, rules: Sequence[Rule], indices: Sequence[int]) -> None:
        parts = []
        for index in indices:
            rule = rules[index]
            inline = "".join(
                letter
                for flag, letter in ((re.IGNORECASE, "i"), (re.DOTALL, "s"), (re.MULTILINE, "m"))
                if rule.flags & flag
            )
            body = re.sub(r"\(\?P<[^>]+>", "(?:", rule.pattern)
            leading = re.match(r"\(\?([aiLmsux]+)\)", body)
            if leading is not None:  # a global flag group is only legal at the very start: scope it instead
                inline += leading.group(1)
                body = body[leading.end() :]
            body = f"(?{inline}:{body})" if inline else f"(?:{body})"
            parts.append(f"(?P<r{index}>{body})")
        self._regex = re.compile("|".join(parts)) if parts else None
        self.failed: list[int] = []

    def matching(self, data: bytes) -> set[int]:
        if self._regex is None:
            return set()
        text = data.decode("utf-8", "surrogatepass")
        return {
            int(name[1:])
            for m in self._regex.finditer(text)
            for name, v in m.groupdict().items()
            if v is not None
        }


BACKENDS: Final = ("hyperscan", "re2", "re")
"""Backend names in order of preference."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One rule set compiled twice: for the UTF-8 bytes of an ASCII text, and for the ASCII view of any other text
    (`wide`), where Python's Unicode `\\w`, `\\b` and non-ASCII literals need the view-aware patterns of
    `finders.view_pattern`; stage 1 of a non-ASCII text runs the wide set alone. The stage-2 programs are built on
    first use (`_OnFirstUse`)."""

    impl: _Backend
    always: tuple[int, ...]
    regexes: _OnFirstUse[re.Pattern[str]]
    finders: _OnFirstUse[Any | None]
    wide_impl: _Backend | None
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


def _wide_rules(rules: Sequence[Rule], wanted: Sequence[int]) -> tuple[list[Rule], list[int], list[int]]:
    """Each wanted rule's stage-1 pattern for the ASCII view (its prefilter's, else its pattern's): the rules, the
    indices they stand for, and the indices that have none (searched with Python on every non-ASCII text)."""
    out: list[Rule] = []
    indices: list[int] = []
    missing: list[int] = []
    for index in wanted:
        rule = rules[index]
        viewed = None
        if rule.prefilter is not None:
            viewed = view_pattern(rule.prefilter, wide=True, is_bytes=True)
        if viewed is None:
            viewed = view_pattern(rule.pattern, wide=True)
        if viewed is None:
            missing.append(index)
            continue
        out.append(Rule(type=rule.type, pattern=viewed, flags=rule.flags))
        indices.append(index)
    return out, indices, missing


def _backend(name: str, rules: Sequence[Rule], indices: Sequence[int]) -> tuple[_Backend, list[int]]:
    if name == "hyperscan":
        hs = _HyperscanBackend(rules, indices)
        release_freed_heap()
        return hs, hs.failed
    if name == "re2":
        r2 = _Re2Backend(rules, indices)
        return r2, r2.failed
    if name == "re":
        return _ReBackend(rules, indices), []
    raise ValueError(f"unknown matcher backend {name!r}")


@dataclass(frozen=True, slots=True)
class _Part:
    """The narrow and wide databases of some rules, numbered from 0 in their own order (see `_Compiled`)."""

    impl: _Backend
    always: tuple[int, ...]
    wide_impl: _Backend | None
    wide_always: tuple[int, ...]


_PARTS: dict[tuple[str, tuple[tuple[str, int, str | None], ...]], _Part] = {}
"""Compiled parts by backend and rules, so matchers with some rules in common (the request and response directions)
hold one copy of those databases, wherever the rules sit in each (`MultiMatcher(parts=...)`)."""
_PARTS_LIMIT: Final = 4 * _COMPILED_LIMIT


def _part(name: str, rules: Sequence[Rule]) -> _Part:
    key = (name, tuple((r.pattern, r.flags, r.prefilter) for r in rules))
    with _CACHE_LOCK:
        known = _PARTS.get(key)
    if known is not None:
        return known
    indices = range(len(rules))
    wide_impl: _Backend | None = None
    wide_always: list[int] = []
    if name == "re":  # Python's `re` reads the text itself, Unicode and all
        impl, always = _backend(name, rules, indices)
    else:
        viewed, positions, wide_always = _wide_rules(rules, indices)
        with ThreadPoolExecutor(1, thread_name_prefix="guard-compile") as pool:
            # The two databases compile side by side (each in a child process; see `hs_compile`).
            narrow = pool.submit(_backend, name, rules, indices)
            wide_impl, failed = _backend(name, _Sparse(viewed, positions, len(rules)), positions)
            impl, always = narrow.result()
        wide_always += failed
    built = _Part(impl, tuple(always), wide_impl, tuple(sorted(wide_always)))
    with _CACHE_LOCK:
        part = _PARTS.setdefault(key, built)  # compiled at the same time by another thread: keep theirs
        while len(_PARTS) > _PARTS_LIMIT:
            _PARTS.pop(next(iter(_PARTS)))
    return part


class _Placed:
    """A part's backend answering with the matcher's own rule indices."""

    def __init__(self, backend: _Backend, indices: Sequence[int]) -> None:
        self.backend, self.indices, self.name = backend, tuple(indices), backend.name

    def matching(self, data: bytes) -> set[int]:
        indices = self.indices
        return {indices[local] for local in self.backend.matching(data)}


class _Union:
    """The parts of a matcher, one pass each."""

    def __init__(self, parts: Sequence[_Backend]) -> None:
        self.parts = tuple(parts)
        self.name = self.parts[0].name

    def matching(self, data: bytes) -> set[int]:
        found: set[int] = set()
        for part in self.parts:
            found |= part.matching(data)
        return found


def _placed(backend: _Backend, indices: Sequence[int]) -> _Backend:
    """`backend` reporting `indices[i]` for its rule `i` (itself when they are the same numbers)."""
    return backend if all(i == n for n, i in enumerate(indices)) else _Placed(backend, indices)


def _joined(backends: Sequence[_Backend]) -> _Backend:
    return backends[0] if len(backends) == 1 else _Union(backends)


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
            parts = [(group, _part(name, [rules[i] for i in group])) for group in groups]
        except ImportError:
            continue
        narrow = [_placed(part.impl, group) for group, part in parts]
        wide = [_placed(part.wide_impl, group) for group, part in parts if part.wide_impl is not None]
        return _Compiled(
            impl=_joined(narrow),
            always=tuple(sorted(group[i] for group, part in parts for i in part.always)),
            regexes=_OnFirstUse(rules, Rule.compiled),
            finders=_OnFirstUse(rules, re2_finder),
            wide_finders=_OnFirstUse(rules, _wide_finder),
            wide_impl=_joined(wide) if wide and len(wide) == len(parts) else None,
            wide_always=tuple(sorted(group[i] for group, part in parts for i in part.wide_always)),
            twins={k: tuple(v) for k, v in twins.items()},
        )
    raise ValueError(f"no matcher backend available among {candidates}")


class _Sparse(Sequence[Rule]):
    """`rules` placed at `positions` of a sequence of `size` (the backends index rules by their global position)."""

    def __init__(self, rules: Sequence[Rule], positions: Sequence[int], size: int) -> None:
        self._at = dict(zip(positions, rules, strict=True))
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: Any) -> Any:
        return self._at[index]


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
