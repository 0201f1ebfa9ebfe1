"""The `Detector` seam: a pure, synchronous check of one string, and the `Rule` records pattern detectors share.

Rules:
- Detectors do no I/O, keep no state between calls and never put matched text into a `Finding`.
- A `PatternDetector` exposes its regexes as `rules`; the engine merges the rules of every active detector into one
  multi-pattern pass (`bastion.guard.matcher`) and hands each detector only the candidate matches of its own rules,
  so a string is scanned once however many detectors run. `scan()` is the same logic for one detector alone.
- Rule patterns are Python `re` syntax. Those that Hyperscan or RE2 cannot take as they are (look-arounds, `\\u`
  escapes) carry a `prefilter` that matches at least wherever the pattern does; the Python pattern then confirms.
- Rule patterns never rely on `^`/`$` meaning "start/end of the string": several strings may be scanned as one
  buffer joined by NUL characters, and matches that cross a NUL are discarded.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bastion.guard.finding import Finding, Severity
from bastion.guard.payload import PathLink, format_path, path_parts

if TYPE_CHECKING:
    from bastion.guard.payload import Walk


class Direction(enum.StrEnum):
    """Which way a payload travels, which decides the detectors that look at it and their actions."""

    REQUEST = "request"
    """Agent to server: tool-call arguments (also prompt arguments and resource URIs)."""
    RESPONSE = "response"
    """Server to agent: a tool result or resource contents."""
    TOOL = "tool"
    """A tool definition from `tools/list` (name, description, inputSchema, annotations)."""


class ScanContext:
    """Where a string sits: what a detector may use besides the text itself.

    Attributes:
        direction: the way the payload travels.
        path: JSON path of the string, e.g. `$.arguments.url` or `$.content[0].text` (formatted on first use:
            most strings never produce a finding).
        key: the object key holding the string (the argument name for a top-level argument), if any.
        server: upstream server name, if known.
        tool: tool name as the upstream knows it (not namespaced), if known.
        whole: the payload is small enough that every `WholeCheck` judged its whole text already.
    """

    __slots__ = ("_link", "_path", "direction", "key", "server", "tool", "whole")

    def __init__(
        self,
        *,
        direction: Direction,
        path: str | None = None,
        key: str | None = None,
        server: str | None = None,
        tool: str | None = None,
        link: PathLink = None,
        whole: bool = False,
    ) -> None:
        self.direction = direction
        self.whole = whole
        self.key = key
        self.server = server
        self.tool = tool
        self._path = path if path is not None or link is not None else "$"
        self._link = link

    @property
    def path(self) -> str:
        if self._path is None:
            self._path = format_path(path_parts(self._link))
        return self._path

    def __repr__(self) -> str:
        return f"ScanContext(direction={self.direction!s}, path={self.path!r}, key={self.key!r}, tool={self.tool!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One regex of a pattern detector, identified by its position in the detector's `rules`."""

    type: str
    """Finding type this rule produces when confirmed, e.g. `aws_access_key`."""
    pattern: str
    """Python `re` pattern that finds candidate spans (the confirmation pass)."""
    flags: int = 0
    """`re.IGNORECASE`, `re.DOTALL` and `re.MULTILINE` are honoured by every matcher backend."""
    prefilter: str | None = None
    """A pattern for Hyperscan/RE2 (bytes semantics) that matches wherever `pattern` does; `None` means reuse
    `pattern`. Use it for look-arounds and non-ASCII characters, written as UTF-8 byte escapes."""
    severity: Severity = Severity.MEDIUM
    """Severity of the finding unless the detector's validator decides otherwise."""
    group: int | str = 0
    """The regex group whose span is the finding's span (and what redaction replaces)."""

    def compiled(self) -> re.Pattern[str]:
        """The confirmation regex."""
        return re.compile(self.pattern, self.flags)


@dataclass(frozen=True, slots=True)
class Hit:
    """A confirmed regex match of one rule in one string, handed to the detector's validator."""

    rule: int
    """Index of the rule in the detector's `rules`."""
    match: re.Match[str]
    """The match in the string being scanned (offsets are relative to that string)."""


@runtime_checkable
class Detector(Protocol):
    """Finds one family of problems in one string."""

    name: str
    """Stable detector name: `secrets`, `pii`, `injection`, `poisoning`, `arguments`, `schema`, or a plugin's."""

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        """All findings in `text`, each with this detector's name, the context's path and a span when it has one."""
        ...


@runtime_checkable
class PatternDetector(Detector, Protocol):
    """A detector whose first step is a set of regexes, so the engine can run all of them in one pass."""

    rules: Sequence[Rule]
    """The candidate patterns, merged by the engine with every other active detector's."""

    def confirm(self, text: str, hits: Sequence[Hit], context: ScanContext) -> list[Finding]:
        """Validate candidate matches (checksums, entropy, context words) and turn the real ones into findings.

        Called only for strings with at least one hit of this detector's rules.
        """
        ...


@runtime_checkable
class StringCheck(Protocol):
    """An optional extra hook: a check that needs every string of a direction, not only those with hits."""

    def check(self, text: str, context: ScanContext) -> list[Finding]:
        """Findings that no regex can find first (e.g. a path outside the configured roots)."""
        ...

    def wants_every_string(self, direction: Direction) -> bool:
        """Whether `check` must run for every string of this direction (kept cheap: most detectors say no)."""
        ...


@runtime_checkable
class WholeCheck(Protocol):
    """An optional hook for a detector whose cheap first stage can miss what it is after: the whole text of a small
    payload (at most `whole_chars` characters in all: a prompt, a short argument or result) is given to it once,
    whether its stage-1 rules fired or not. Large payloads never reach it, so its cost stays bounded."""

    whole_chars: int

    def check_whole(self, text: str, context: ScanContext, *, hit: bool) -> list[Finding]:
        """Findings on the payload's strings joined by newlines (`context` names its longest string); `hit` says
        whether the detector's own stage-1 rules matched anywhere in the payload (when it has rules)."""
        ...


@runtime_checkable
class PayloadCheck(Protocol):
    """A detector that judges a whole payload (schema validation, size limits) instead of single strings."""

    name: str
    max_depth: int
    """The walk stops descending below this depth; the check reports it."""

    def inspect_payload(
        self, payload: Any, walk: Walk, schema: Mapping[str, Any] | None, direction: Direction
    ) -> list[Finding]:
        """Findings about the payload as a whole; `walk` is what the engine's single walk measured."""
        ...
