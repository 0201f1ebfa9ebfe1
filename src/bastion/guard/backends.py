"""Stage 1 of `matcher.MultiMatcher`: which rules may match somewhere in a buffer, in one pass per part.

A backend answers with rule indices and may over-report (prefilter mode) but never under-report, except the `re`
fallback, which can miss a rule whose match starts where another rule's match already did. Backends, fastest
first: Hyperscan (each rule reported at most once), RE2's `Set`, a plain `re` alternation.

A part is some rules compiled twice (for the bytes of an ASCII text and for the ASCII view of any other, see
`finders.view_pattern`) and held once per process, keyed by its rules, so matchers with rules in common (the
request and response directions) share those databases wherever the rules sit in each; `placed` and `joined`
turn parts back into one backend numbered as the matcher's rules. A rule a backend cannot compile is reported in
`failed` and left to Python. Hyperscan databases are compiled by a child Python and loaded serialized (in process
only when no child can), so the compiler's memory never stays in the gateway (`hs_compile`).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final, Protocol

from bastion.guard.detector import Rule
from bastion.guard.finders import view_pattern
from bastion.guard.hs_compile import compile_in_child, release_freed_heap

logger = logging.getLogger("bastion.guard.matcher")

LOOKAROUND: Final = re.compile(r"\(\?<?[=!]|\\[1-9]|\(\?P=")
"""Constructs Hyperscan rejects outside prefilter mode."""


def rule_source(rule: Rule) -> str:
    return rule.prefilter if rule.prefilter is not None else rule.pattern


def _inline_flags(rule: Rule) -> str:
    """The rule's flags as inline letters, for backends that take a pattern alone."""
    return "".join(
        letter
        for flag, letter in ((re.IGNORECASE, "i"), (re.DOTALL, "s"), (re.MULTILINE, "m"))
        if rule.flags & flag
    )


class Backend(Protocol):
    name: str

    def matching(self, data: bytes) -> set[int]: ...


class HyperscanBackend:
    name = "hyperscan"

    def __init__(self, rules: Sequence[Rule], indices: Sequence[int]) -> None:
        import hyperscan

        self._hs = hyperscan
        good: list[tuple[int, bytes, int]] = []
        self.failed: list[int] = []
        for index in indices:
            rule = rules[index]
            source = rule_source(rule)
            flags = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY
            if rule.flags & re.IGNORECASE:
                flags |= hyperscan.HS_FLAG_CASELESS
            if rule.flags & re.DOTALL:
                flags |= hyperscan.HS_FLAG_DOTALL
            if rule.flags & re.MULTILINE:
                flags |= hyperscan.HS_FLAG_MULTILINE
            if rule.prefilter is None and LOOKAROUND.search(source):
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


class Re2Backend:
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
            inline = _inline_flags(rule)
            source = rule_source(rule)
            if rule.prefilter is None and LOOKAROUND.search(source):
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


class ReBackend:
    """Last resort: one alternation of named groups; a rule shadowed by another at the same start is missed."""

    name = "re"

    def __init__(self, rules: Sequence[Rule], indices: Sequence[int]) -> None:
        parts = []
        for index in indices:
            rule = rules[index]
            inline = _inline_flags(rule)
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


def _backend(name: str, rules: Sequence[Rule], indices: Sequence[int]) -> tuple[Backend, list[int]]:
    if name == "hyperscan":
        hs = HyperscanBackend(rules, indices)
        release_freed_heap()
        return hs, hs.failed
    if name == "re2":
        r2 = Re2Backend(rules, indices)
        return r2, r2.failed
    if name == "re":
        return ReBackend(rules, indices), []
    raise ValueError(f"unknown matcher backend {name!r}")


@dataclass(frozen=True, slots=True)
class Part:
    """The narrow and wide databases of some rules, numbered from 0 in their own order (see `_Compiled`)."""

    impl: Backend
    always: tuple[int, ...]
    wide_impl: Backend | None
    wide_always: tuple[int, ...]


_PARTS: dict[tuple[str, tuple[tuple[str, int, str | None], ...]], Part] = {}
"""Compiled parts by backend and rules, so matchers with some rules in common (the request and response directions)
hold one copy of those databases, wherever the rules sit in each (`MultiMatcher(parts=...)`)."""
_PARTS_LIMIT: Final = 64
_PARTS_LOCK = threading.Lock()


def part(name: str, rules: Sequence[Rule]) -> Part:
    key = (name, tuple((r.pattern, r.flags, r.prefilter) for r in rules))
    with _PARTS_LOCK:
        known = _PARTS.get(key)
    if known is not None:
        return known
    indices = range(len(rules))
    wide_impl: Backend | None = None
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
    built = Part(impl, tuple(always), wide_impl, tuple(sorted(wide_always)))
    with _PARTS_LOCK:
        part = _PARTS.setdefault(key, built)  # compiled at the same time by another thread: keep theirs
        while len(_PARTS) > _PARTS_LIMIT:
            _PARTS.pop(next(iter(_PARTS)))
    return part


class _Placed:
    """A part's backend answering with the matcher's own rule indices."""

    def __init__(self, backend: Backend, indices: Sequence[int]) -> None:
        self.backend, self.indices, self.name = backend, tuple(indices), backend.name

    def matching(self, data: bytes) -> set[int]:
        indices = self.indices
        return {indices[local] for local in self.backend.matching(data)}


class _Union:
    """The parts of a matcher, one pass each."""

    def __init__(self, parts: Sequence[Backend]) -> None:
        self.parts = tuple(parts)
        self.name = self.parts[0].name

    def matching(self, data: bytes) -> set[int]:
        found: set[int] = set()
        for part in self.parts:
            found |= part.matching(data)
        return found


def placed(backend: Backend, indices: Sequence[int]) -> Backend:
    """`backend` reporting `indices[i]` for its rule `i` (itself when they are the same numbers)."""
    return backend if all(i == n for n, i in enumerate(indices)) else _Placed(backend, indices)


def joined(backends: Sequence[Backend]) -> Backend:
    return backends[0] if len(backends) == 1 else _Union(backends)


class _Sparse(Sequence[Rule]):
    """`rules` placed at `positions` of a sequence of `size` (the backends index rules by their global position)."""

    def __init__(self, rules: Sequence[Rule], positions: Sequence[int], size: int) -> None:
        self._at = dict(zip(positions, rules, strict=True))
        self._size = size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: Any) -> Any:
        return self._at[index]
