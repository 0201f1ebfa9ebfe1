"""`Allowlist`: known-benign findings an operator switches off for some servers and tools (`guardrails.allow`).

Actions and overrides decide what happens to a whole finding *type*; an allowlist entry is narrower: it drops the
findings whose matched text fits a pattern, so a documentation server may quote "ignore previous instructions"
while every other server is still blocked for it, and a config key that looks like a secret may pass by name.

Rules:
- An entry applies when every set field matches: server and tool globs, `detector.type` globs, and the pattern
  (searched in the matched text). A finding without a span (a whole-payload finding) never matches a pattern.
- Entries are checked after detection and before actions, so an allowed finding is not reported at all.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence

from bastion.guard.config import AllowEntry
from bastion.guard.finding import Finding


class Allowlist:
    """The compiled `guardrails.allow` entries."""

    def __init__(self, entries: Sequence[AllowEntry]) -> None:
        self._entries = [(e, re.compile(e.pattern) if e.pattern else None) for e in entries]

    def __bool__(self) -> bool:
        return bool(self._entries)

    def allows(self, finding: Finding, matched: str | None, server: str | None, tool: str | None) -> bool:
        """Whether `finding` (whose matched text is `matched`, if it has a span) is allowed here."""
        name = f"{finding.detector}.{finding.type}"
        for entry, pattern in self._entries:
            if entry.servers and (
                server is None or not any(fnmatch.fnmatchcase(server, g) for g in entry.servers)
            ):
                continue
            if entry.tools and (tool is None or not any(fnmatch.fnmatchcase(tool, g) for g in entry.tools)):
                continue
            if not any(
                fnmatch.fnmatchcase(name, g) or fnmatch.fnmatchcase(finding.detector, g)
                for g in entry.findings
            ):
                continue
            if pattern is not None and (matched is None or pattern.search(matched) is None):
                continue
            return True
        return False
