"""The `Guard`: every detector over one JSON payload in one walk and one multi-pattern pass, then actions and redaction.

Public API (stable; the pipeline stage, rug-pull pinning and `bastion scan` build on it):

    guard = Guard(config.guardrails)                      # compile once, reuse for every message
    result = guard.inspect("response", tool_result, server="github", tool="get_issue")
    result.action    # Action.ALLOW | FLAG | REDACT | ASK | BLOCK (the strongest among findings)
    result.findings  # tuple[Finding, ...], each with `action` set; never the matched text
    result.payload   # the payload after redaction (the same object when nothing changed)

Payloads by direction: `request` is a tool call's `arguments` (pass the tool's `inputSchema` as `schema` to validate
them), `response` is the `result` of a call or read, `tool` is ONE tool definition from `tools/list` (inspect each
tool separately so one poisoned tool does not hide the others).

Rules:
- `inspect` is pure and synchronous: no I/O, no awaits; safe to call from a worker thread (one Hyperscan scratch per
  thread).
- Normalised views (`bastion.guard.views`, `normalize: true`) are scanned in the same pass as the raw strings; a view
  finding is reported at its origin's path, only when the raw scan did not already report it, and redacts the whole
  origin string. `guardrails.allow` entries drop known-benign findings before actions.
- Fail closed: a detector that raises turns into a `detector_error` finding whose action is `block` (`flag` with
  `failure_mode: open`); the exception is logged without the payload.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

from bastion.guard.actions import Action, ActionTable, strongest
from bastion.guard.allowlist import Allowlist
from bastion.guard.config import GuardrailsConfig
from bastion.guard.detector import (
    Detector,
    Direction,
    Hit,
    PatternDetector,
    PayloadCheck,
    Rule,
    ScanContext,
    StringCheck,
    WholeCheck,
)
from bastion.guard.finding import Finding, Severity
from bastion.guard.matcher import MultiMatcher, ascii_view
from bastion.guard.payload import PathPart, Walk, path_parts, redact_string, replace_strings, walk
from bastion.guard.views import CANDIDATE_RULES, View, derive, marks_in

logger = logging.getLogger("bastion.guard")

__all__ = ["Action", "Direction", "Guard", "GuardResult"]

_UNCHECKED_DEPTH: Final = 10_000
"""Walk depth when no size check runs in a direction: deep enough for any real payload, bounded for hostile ones."""

_JOIN: Final = "\x00"
"""Separator of the strings of one payload in the single scan buffer; matches across it are discarded."""
_PARTNER: Final = {Direction.REQUEST: Direction.RESPONSE, Direction.RESPONSE: Direction.REQUEST}
"""Directions whose plans share the database of the rules they have in common (see `_plan`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardResult:
    """What the guard decided about one payload."""

    action: Action
    """The strongest action among the findings (`allow` when there are none)."""
    findings: tuple[Finding, ...]
    """Every finding that is not switched off, each with its `action`; payload-level findings (schema, size) first,
    then in document order."""
    payload: Any
    """The payload with `redact` spans replaced; the input object itself when nothing was redacted."""

    @property
    def blocked(self) -> bool:
        """The payload must not go on."""
        return self.action is Action.BLOCK

    def explanation(self) -> str:
        """A short audit line naming detectors, types and paths (never matched text)."""
        if not self.findings:
            return "no findings"
        parts = [f"{f.detector}/{f.type} at {f.path} ({f.action})" for f in self.findings[:10]]
        more = len(self.findings) - len(parts)
        return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


@dataclass(slots=True)
class _Plan:
    """The compiled detector set of one direction."""

    pattern_detectors: list[PatternDetector]
    owners: list[tuple[int, int]]
    """Global rule index -> (index in `pattern_detectors`, rule index inside that detector)."""
    matcher: MultiMatcher
    """Every detector rule, then (when normalising) the views' candidate rules from index `view_base`."""
    view_base: int
    plain: list[Detector]
    every_string: list[tuple[str, StringCheck]]
    schema: PayloadCheck | None
    whole: list[tuple[str, WholeCheck, int | None]]
    """Detectors given the whole text of a payload of at most `whole_chars` characters, with their slot in
    `pattern_detectors` (None for one without rules)."""
    whole_chars: int


def _default_detectors(config: GuardrailsConfig) -> list[Detector]:
    from bastion.guard.detectors import build_detectors

    return build_detectors(config)


class Guard:
    """Compiled guardrails: build once from config, then `inspect` each payload."""

    def __init__(
        self,
        config: GuardrailsConfig | None = None,
        *,
        detectors: Sequence[Detector] | None = None,
        backend: str | None = None,
    ) -> None:
        """Compile the detectors and their patterns for each direction.

        Args:
            config: the `guardrails:` section; defaults to the default guardrails.
            detectors: replace the built-in detectors (tests, plugins); their `name` keys the action table.
            backend: force the matcher backend (`hyperscan`, `re2`, `re`); default is the fastest available.
        """
        self.config: GuardrailsConfig = config if config is not None else GuardrailsConfig()
        self.actions = ActionTable(self.config)
        self.allowlist = Allowlist(self.config.allow)
        self.detectors: tuple[Detector, ...] = tuple(
            detectors if detectors is not None else _default_detectors(self.config)
        )
        with ThreadPoolExecutor(len(Direction), thread_name_prefix="guard-compile") as pool:
            # Each direction's rule set compiles in its own child process (`hs_compile`): seconds each, so
            # side by side; identical sets and parts are compiled and held once (`MultiMatcher`).
            plans = list(pool.map(lambda d: self._plan(d, backend), Direction))
        self._plans = dict(zip(Direction, plans, strict=True))

    def _plan(self, direction: Direction, backend: str | None) -> _Plan:
        pattern_detectors: list[PatternDetector] = []
        owners: list[tuple[int, int]] = []
        rules: list[Rule] = []
        plain: list[Detector] = []
        every: list[tuple[str, StringCheck]] = []
        whole: list[tuple[str, WholeCheck, int | None]] = []
        schema: PayloadCheck | None = None
        # Compiled in parts, each held once per process for every plan with a part of the same rules: the leading
        # detectors acting on requests and results alike (about 3 MB narrow and as much wide, for the process's
        # life, instead of one copy per direction), this direction's own, and the views' candidates.
        partner = _PARTNER.get(direction)
        shared = 0
        leading = partner is not None
        if self.config.enabled:
            for detector in self.detectors:
                if not self.actions.may_act(detector.name, direction):
                    continue
                if isinstance(detector, PayloadCheck):
                    schema = detector
                    continue
                if isinstance(detector, StringCheck) and detector.wants_every_string(direction):
                    every.append((detector.name, detector))
                if isinstance(detector, WholeCheck) and direction is not Direction.TOOL:
                    slot_of = len(pattern_detectors) if isinstance(detector, PatternDetector) else None
                    whole.append((detector.name, detector, slot_of))
                if isinstance(detector, PatternDetector):
                    slot = len(pattern_detectors)
                    pattern_detectors.append(detector)
                    for local, rule in enumerate(detector.rules):
                        owners.append((slot, local))
                        rules.append(rule)
                    leading = leading and partner is not None and self.actions.may_act(detector.name, partner)
                    shared = len(rules) if leading else shared
                else:
                    plain.append(detector)
        view_base = len(rules)
        if self.config.normalize and (rules or plain or every):
            # The views' marks come from the same stage 1 (their own part, the same in every direction).
            rules.extend(CANDIDATE_RULES)
        matcher = MultiMatcher(rules, backend=backend, parts=(shared, view_base))
        whole_chars = min((check.whole_chars for _, check, _ in whole), default=0)
        return _Plan(pattern_detectors, owners, matcher, view_base, plain, every, schema, whole, whole_chars)

    @property
    def backend(self) -> str:
        """The multi-pattern backend in use (`hyperscan`, `re2` or `re`)."""
        return self._plans[Direction.RESPONSE].matcher.backend

    def active(self, direction: Direction | str) -> bool:
        """Whether any detector runs in `direction` (a stage may skip the call when not)."""
        plan = self._plans[Direction(direction)]
        return bool(plan.view_base or plan.plain or plan.every_string or plan.schema or plan.whole)

    def inspect(
        self,
        direction: Direction | str,
        payload: Any,
        *,
        server: str | None = None,
        tool: str | None = None,
        schema: Mapping[str, Any] | None = None,
    ) -> GuardResult:
        """Run every active detector of `direction` over `payload` and decide.

        Args:
            direction: `request`, `response` or `tool`.
            payload: any JSON value (dicts, lists, strings, numbers...); never modified in place.
            server: upstream server name, for per-server actions.
            tool: the upstream's tool name, for per-tool actions and exec-like argument checks.
            schema: the tool's inputSchema; request arguments are validated against it.

        Returns:
            The decision, the findings (with actions) and the payload after redaction.
        """
        direction = Direction(direction)
        plan = self._plans[direction]
        if not self.active(direction):
            return GuardResult(action=Action.ALLOW, findings=(), payload=payload)
        located: list[tuple[int, Finding]] = []
        views: list[View] = []
        try:
            limit = plan.schema.max_depth if plan.schema is not None else _UNCHECKED_DEPTH
            seen = walk(payload, max_depth=limit)
            if plan.schema is not None:
                checked = self._guarded(
                    plan.schema.name, plan.schema.inspect_payload, payload, seen, schema, direction
                )
                located.extend((-1, f) for f in checked)
            stage1 = _Pass(plan, seen.strings)
            if self.config.normalize:
                views = derive(seen, stage1.marks())
            located.extend(self._scan_strings(plan, seen, direction, server, tool, views, stage1))
        except Exception:
            # Anything the per-detector guards did not catch (walk, matcher): never let the payload through.
            logger.exception("guard engine failed; failing closed")
            located.append((-1, self._error_finding("guard")))
            seen = Walk()
            views = []
        return self._decide(located, seen, payload, direction, server, tool, views)

    def _scan_strings(
        self,
        plan: _Plan,
        seen: Walk,
        direction: Direction,
        server: str | None,
        tool: str | None,
        views: list[View],
        stage1: _Pass,
    ) -> list[tuple[int, Finding]]:
        raw = len(seen.strings)
        strings = seen.strings + [v.text for v in views] if views else seen.strings
        out: list[tuple[int, Finding]] = []
        if not strings:
            return out
        # A small payload is judged whole by the `WholeCheck`s, cues or not; they then skip it in `confirm`.
        whole = bool(plan.whole) and raw > 0 and sum(map(len, seen.strings)) + raw - 1 <= plan.whole_chars

        def context(i: int) -> ScanContext:
            link = seen.links[i] if i < raw else views[i - raw].link
            key = link[0] if link is not None and isinstance(link[0], str) else None
            return ScanContext(direction=direction, key=key, server=server, tool=tool, link=link, whole=whole)

        hits_by_string: dict[int, dict[int, list[Hit]]] = {}
        if plan.view_base:
            hits_by_string = stage1.hits()
            if views:  # a pass of their own: the raw strings keep their fast single-string path
                extra = _Pass(plan, strings[raw:]).hits()
                hits_by_string.update({raw + i: found for i, found in extra.items()})
        if whole:
            out.extend(self._whole(plan, seen.strings, context, hits_by_string))
        wanted = set(hits_by_string)
        if plan.plain or plan.every_string:
            wanted.update(range(len(strings)))
        for i in sorted(wanted):
            ctx = context(i)
            text = strings[i]
            for slot, hits in sorted(hits_by_string.get(i, {}).items()):
                detector = plan.pattern_detectors[slot]
                hits.sort(key=lambda h: (h.match.start(), h.rule))
                out.extend((i, f) for f in self._guarded(detector.name, detector.confirm, text, hits, ctx))
            for name, check in plan.every_string:
                out.extend((i, f) for f in self._guarded(name, check.check, text, ctx))
            for plain in plan.plain:
                out.extend((i, f) for f in self._guarded(plain.name, plain.scan, text, ctx))
        return _keep_view_findings(out, raw, views) if views else out

    def _whole(
        self,
        plan: _Plan,
        strings: list[str],
        context: Callable[[int], ScanContext],
        hits_by_string: dict[int, dict[int, list[Hit]]],
    ) -> list[tuple[int, Finding]]:
        """The `WholeCheck`s over a small payload's strings joined by newlines; a finding is placed on the longest
        string (all of it, when the payload has several), where redaction would act. Whether a check's own rules
        hit comes from the pass already made, not from a second search."""
        longest = max(range(len(strings)), key=lambda i: len(strings[i]))
        text = strings[0] if len(strings) == 1 else "\n".join(strings)
        ctx = context(longest)
        out: list[tuple[int, Finding]] = []
        for name, check, slot in plan.whole:
            hit = slot is not None and any(slot in hits_by_string.get(i, {}) for i in range(len(strings)))
            for finding in self._guarded(name, functools.partial(check.check_whole, hit=hit), text, ctx):
                if len(strings) > 1 and finding.start >= 0:
                    finding = dataclasses.replace(finding, start=0, end=len(strings[longest]))
                out.append((longest, finding))
        return out

    def _guarded(self, name: str, fn: Any, *args: Any) -> list[Finding]:
        try:
            return list(fn(*args))
        except Exception:
            logger.exception("detector %s failed; failing %s", name, self.config.failure_mode)
            return [self._error_finding(name)]

    def _error_finding(self, name: str) -> Finding:
        action = Action.BLOCK if self.config.failure_mode == "closed" else Action.FLAG
        return Finding(detector=name, type="detector_error", severity=Severity.CRITICAL, action=action.value)

    def _decide(
        self,
        located: list[tuple[int, Finding]],
        seen: Walk,
        payload: Any,
        direction: Direction,
        server: str | None,
        tool: str | None,
        views: list[View],
    ) -> GuardResult:
        kept: list[tuple[int, Finding]] = []
        raw = len(seen.strings)
        for index, finding in located:
            if finding.type == "detector_error" and finding.action:
                kept.append((index, finding))
                continue
            if self.allowlist and self.allowlist.allows(
                finding, _matched(seen, views, index, finding), server, tool
            ):
                continue
            action = self.actions.resolve(
                finding.detector, finding.type, finding.severity, direction, server=server, tool=tool
            )
            if action is None:
                continue
            if index >= raw and action is Action.REDACT and not views[index - raw].origins:
                action = Action.BLOCK  # found in an object key: a key cannot be redacted in place
            kept.append((index, dataclasses.replace(finding, action=action.value)))
        if not kept:
            return GuardResult(action=Action.ALLOW, findings=(), payload=payload)
        spans: dict[int, list[tuple[int, int, str]]] = {}
        for index, finding in kept:
            if finding.action != Action.REDACT or index < 0:
                continue
            if index >= raw:  # a derived view: its offsets mean nothing in the original, so all of it goes
                for origin in views[index - raw].origins:
                    spans.setdefault(origin, []).append((0, len(seen.strings[origin]), finding.type))
            elif 0 <= finding.start < finding.end:
                spans.setdefault(index, []).append((finding.start, finding.end, finding.type))
        new_payload = payload
        if spans:
            replacements: dict[tuple[PathPart, ...], str] = {
                path_parts(seen.links[i]): redact_string(seen.strings[i], s) for i, s in spans.items()
            }
            new_payload = replace_strings(payload, replacements)
        findings = tuple(f for _, f in kept)
        return GuardResult(
            action=strongest([Action(f.action) for f in findings]), findings=findings, payload=new_payload
        )


def _keep_view_findings(
    out: list[tuple[int, Finding]], raw: int, views: list[View]
) -> list[tuple[int, Finding]]:
    """Drop view findings the raw scan already made, and joined-view findings that do not cross a join."""
    seen_raw = {(f.detector, f.type, f.path) for i, f in out if i < raw}
    kept: list[tuple[int, Finding]] = []
    for i, f in out:
        if i >= raw:
            view = views[i - raw]
            if view.cuts and not any(f.start < cut < f.end for cut in view.cuts):
                continue
            if (f.detector, f.type, f.path) in seen_raw:
                continue
            seen_raw.add((f.detector, f.type, f.path))
        kept.append((i, f))
    return kept


def _matched(seen: Walk, views: list[View], index: int, finding: Finding) -> str | None:
    """The text a finding matched (for allowlist patterns), or None when it has no span."""
    if index < 0 or finding.start < 0:
        return None
    raw = len(seen.strings)
    text = seen.strings[index] if index < raw else views[index - raw].text
    return text[finding.start : finding.end]


class _Pass:
    """Stage 1 over the strings of one payload (joined by NUL into one buffer), and what it located.

    The multi-pattern pass runs once here; stage 2 (where each reported rule matches) runs on demand, for the
    detectors (`hits`) and for the views' candidate rules (`marks`), on the same buffer and ASCII view.
    """

    __slots__ = ("_view", "buffer", "matched", "plan", "starts", "strings")

    def __init__(self, plan: _Plan, strings: list[str]) -> None:
        self.plan = plan
        self.strings = strings
        self.buffer = strings[0] if len(strings) == 1 else _JOIN.join(strings)
        # A non-ASCII buffer is matched on its view in both stages: made here once.
        self._view: bytes | None = None if self.buffer.isascii() else ascii_view(self.buffer)
        self.matched: list[int] = plan.matcher.matching(self.buffer, self._view) if strings else []
        self.starts: list[int] = []
        if len(strings) > 1 and self.matched:
            offset = 0
            for text in strings:
                self.starts.append(offset)
                offset += len(text) + 1
        elif strings:
            self.starts = [0]

    def view(self) -> bytes:
        """The buffer as the finders read it (`ascii_view`), made once for every rule."""
        if self._view is None:
            buffer = self.buffer
            self._view = ascii_view(buffer)
        return self._view

    def marks(self) -> dict[int, list[tuple[int, int, int]]]:
        """The views' marked segments (see `views.marks_in`)."""
        base = self.plan.view_base
        found = [g - base for g in self.matched if g >= base]
        if not found:
            return {}
        return marks_in(self.strings, self.buffer, self.starts, self.view(), self.plan.matcher, found, base)

    def hits(self) -> dict[int, dict[int, list[Hit]]]:
        """Stage 2 for each reported detector rule: hits grouped by string and detector."""
        plan, matcher, strings = self.plan, self.plan.matcher, self.strings
        hits: dict[int, dict[int, list[Hit]]] = {}
        wanted = [g for g in self.matched if g < plan.view_base]
        if not wanted:
            return hits
        buffer, view = self.buffer, self.view()
        # Identical rules of several detectors: one search, its matches handed to each.
        found: dict[int, list[tuple[int, re.Match[str]]]] = {}
        starts = self.starts
        for g in wanted:
            slot, local = plan.owners[g]
            twin = matcher.twin_of(g)
            located = found.get(twin)
            if located is None:
                if len(strings) == 1:
                    located = [(0, m) for m in matcher.finditer(twin, buffer, view)]
                else:
                    located = list(matcher.finditer_joined(twin, buffer, view, starts, strings))
                found[twin] = located
            for i, m in located:
                hits.setdefault(i, {}).setdefault(slot, []).append(Hit(local, m))
        return hits
