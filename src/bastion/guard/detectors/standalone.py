"""`StandaloneScan`: the one `scan()` of every pattern detector used on its own, outside the engine's merged pass.

The engine runs all detectors' rules in one matcher pass and hands each its hits (`confirm`); a detector used alone
(tests, `bastion guard test`, a policy replay) compiles its own rules once, on first use, and confirms the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.guard.detector import Hit, Rule, ScanContext
from bastion.guard.finding import Finding
from bastion.guard.matcher import MultiMatcher


class StandaloneScan:
    """Mixin for a `PatternDetector`: `scan()` = its own single pass over `rules`, then `confirm()`."""

    rules: Sequence[Rule]
    _matcher: MultiMatcher | None = None
    """Compiled on the first standalone scan (the engine never needs it)."""

    def confirm(self, text: str, hits: Sequence[Hit], context: ScanContext) -> list[Finding]:
        """Overridden by each detector (see `PatternDetector.confirm`)."""
        raise NotImplementedError

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        """Standalone use: this detector's own single pass."""
        matcher = self._matcher
        if matcher is None:
            matcher = self._matcher = MultiMatcher(self.rules)
        hits = [Hit(i, m) for i, m in matcher.search_all(text)]
        return self.confirm(text, sorted(hits, key=lambda h: h.match.start()), context) if hits else []
