"""`FlowPolicy`: decides a tool call from the session's taint (what earlier results carried) and its labels.

Rules:
- Taint comes from what actually flowed back to the client: a result with findings of a private detector
  (secrets, PII) marks the session `private`; a result of a `reads_untrusted` tool, or with findings of an
  untrusted detector (injection), marks it `untrusted`. Each mark names the tool, the time, the finding kinds and
  the audit event of the result; a result the guardrails refused taints nothing (the client never saw it).
- The data rule comes first: arguments carrying a fingerprinted private value (or a fragment of one) are refused
  (`data_rule`) whatever the tool's labels. Then every flow rule whose CEL holds; the strongest action wins
  (deny > ask > flag), the first such rule in file order names the decision.
- A rule whose condition cannot be evaluated matches: a security decision that cannot be made is a refusal.
- Explanations name the chain (tools, times, finding kinds, event ids), never a value.
- Pure: no I/O. The stage loads and saves the taint (`bastion.policy.taint`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Final

from bastion.guard.finding import Finding
from bastion.guard.payload import format_path, path_parts, walk
from bastion.policy.cel import Condition
from bastion.policy.fingerprints import Fingerprint, find, normalise
from bastion.policy.flow_config import FlowConfig, FlowRuleConfig
from bastion.policy.labels import ToolLabels

PRIVATE: Final = "private"
UNTRUSTED: Final = "untrusted"
_RANK: Final = {"flag": 1, "ask": 2, "deny": 3}
_UNRELEASED: Final = frozenset({"redact", "block"})
"""Finding actions after which the matched value never reached the client."""
_WALK_DEPTH: Final = 64
_MEMO_SIZE: Final = 4096
"""Remembered condition outcomes per compiled policy (cleared whole when full)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaintMark:
    """One reason the session is tainted: which result, when, and what was found in it."""

    kind: str
    """`private` or `untrusted`."""
    tool: str
    """Namespaced tool (or server and target) whose result tainted the session."""
    time: float
    """Epoch seconds of the result."""
    findings: tuple[str, ...] = ()
    """Finding kinds (`detector/type`) behind the mark; empty when the tool's label alone did it."""
    event: str = ""
    """Audit event id of that exchange."""
    finding_ids: tuple[str, ...] = ()
    """`<event>#<n>`: the n-th finding (0-based, in decision order) of that audit event."""
    principal: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tool": self.tool,
            "time": self.time,
            "findings": list(self.findings),
            "event": self.event,
            "finding_ids": list(self.finding_ids),
            "principal": self.principal,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaintMark:
        return cls(
            kind=str(data["kind"]),
            tool=str(data.get("tool", "")),
            time=float(data.get("time", 0.0)),
            findings=tuple(str(f) for f in data.get("findings", ())),
            event=str(data.get("event", "")),
            finding_ids=tuple(str(f) for f in data.get("finding_ids", ())),
            principal=str(data.get("principal", "")),
        )

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.time))
        why = ", ".join(self.findings) if self.findings else "tool label"
        return f"{self.kind} by {self.tool} at {when} ({why}; event {self.event or '-'})"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionTaint:
    """What a session has seen so far."""

    marks: tuple[TaintMark, ...] = ()
    fingerprints: Mapping[Fingerprint, str] = field(default_factory=dict)
    """Fingerprints of private values -> the event id of the result they came from."""
    salt: bytes = b""

    @property
    def kinds(self) -> list[str]:
        return sorted({m.kind for m in self.marks})

    def tainted(self, kind: str) -> bool:
        return any(m.kind == kind for m in self.marks)

    def known(self) -> dict[int, frozenset[str]]:
        by_length: dict[int, set[str]] = {}
        for length, digest in self.fingerprints:
            by_length.setdefault(length, set()).add(digest)
        return {length: frozenset(d) for length, d in by_length.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowVerdict:
    """A flow decision that is not a plain pass."""

    action: str
    """`deny`, `ask` or `flag`."""
    rule: str
    """The flow rule id, or `data-rule`."""
    explanation: str
    """The chain in words (no values)."""
    chain: tuple[TaintMark, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Observed:
    """What one result adds to the session's taint."""

    marks: tuple[TaintMark, ...] = ()
    values: tuple[str, ...] = ()
    """Private values released to the client (fingerprinted by the stage, never stored)."""


def _tainted(session: Any, label: Any) -> Any:
    import celpy

    labels = session.get(celpy.celtypes.StringType("labels")) if hasattr(session, "get") else None
    return celpy.celtypes.BoolType(labels is not None and str(label) in {str(x) for x in labels})


@dataclass(frozen=True, slots=True)
class _Rule:
    index: int
    config: FlowRuleConfig
    condition: Condition
    args: bool
    """The condition mentions `args` (its outcome depends on them)."""
    principal: bool
    """The condition mentions `principal`."""


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _scope(
    name: str,
    server: str,
    tool: str,
    labels: Sequence[str],
    args: Mapping[str, Any],
    principal: Mapping[str, Any],
    taint: SessionTaint,
) -> dict[str, Any]:
    """The variables a flow condition sees."""
    from celpy.adapter import json_to_cel

    return {
        "tool": json_to_cel({"name": name, "server": server, "local": tool, "labels": list(labels)}),
        "args": json_to_cel(dict(args)),
        "principal": json_to_cel(dict(principal)),
        "session": json_to_cel({"labels": taint.kinds}),
    }


class FlowPolicy:
    """The compiled `policy.flow` section."""

    def __init__(self, config: FlowConfig) -> None:
        self.config = config
        self.enabled = config.enabled
        self._rules = tuple(
            _Rule(
                i,
                rule,
                Condition(rule.when, path=f"policy.flow.rules[{i}].when", functions={"tainted": _tainted}),
                args="args" in rule.when,
                principal="principal" in rule.when,
            )
            for i, rule in enumerate(config.rules)
        )
        self._memo: dict[tuple[Any, ...], bool] = {}
        """Condition outcomes by what they can depend on: CEL here is pure, and interpreting it costs ~1 ms."""
        self._private = frozenset(config.private_detectors)
        self._untrusted = frozenset(config.untrusted_detectors)

    def labels(self, references: Mapping[str, str]) -> ToolLabels:
        return ToolLabels(self.config, references)

    def judge(
        self,
        *,
        server: str,
        tool: str,
        labels: Sequence[str],
        args: Mapping[str, Any],
        principal: Mapping[str, Any],
        taint: SessionTaint,
    ) -> FlowVerdict | None:
        """The verdict on calling `tool` (the upstream's name) on `server` with `args`; None to let it pass."""
        name = f"{server}__{tool}"
        if self.config.data_rule != "off" and taint.fingerprints:
            strings = walk(dict(args), max_depth=_WALK_DEPTH).strings
            hits = find(strings, taint.known(), taint.salt)
            if hits:
                sources = {taint.fingerprints[h] for h in hits}
                chain = tuple(m for m in taint.marks if m.kind == PRIVATE and m.event in sources)
                return FlowVerdict(
                    action=self.config.data_rule,
                    rule="data-rule",
                    chain=chain,
                    explanation=(
                        f"the arguments of {name} carry data from a private result of this session: "
                        + "; ".join(m.describe() for m in chain)
                    ),
                )
        if not self._rules:
            return None
        facts = (name, tuple(labels), tuple(taint.kinds))
        scope: dict[str, Any] | None = None
        chosen: _Rule | None = None
        for rule in self._rules:
            if not any(fnmatchcase(server, g) for g in rule.config.servers):
                continue
            key = (
                rule.index,
                facts,
                _json(principal) if rule.principal else "",
                _json(args) if rule.args else "",
            )
            matched = self._memo.get(key)
            if matched is None:
                if scope is None:
                    scope = _scope(name, server, tool, labels, args, principal, taint)
                matched = rule.condition.evaluate(scope) is not False  # no value: matches (fail closed)
                if len(self._memo) >= _MEMO_SIZE:
                    self._memo.clear()
                self._memo[key] = matched
            if not matched:
                continue
            if chosen is None or _RANK[rule.config.action] > _RANK[chosen.config.action]:
                chosen = rule
        if chosen is None:
            return None
        chain = _first_of_each(taint.marks)
        because = "; ".join(m.describe() for m in chain) or "no taint recorded"
        return FlowVerdict(
            action=chosen.config.action,
            rule=chosen.config.id,
            chain=chain,
            explanation=f"flow rule {chosen.config.id} holds for {name} ({', '.join(labels) or 'no labels'}): "
            f"session tainted {because}",
        )

    def observe(
        self,
        *,
        tool: str,
        labels: Sequence[str],
        findings: Sequence[Finding],
        raw: Any,
        sent: Any,
        event: str,
        principal: str,
        now: float,
        finding_ids: Sequence[str] = (),
    ) -> Observed:
        """What a result returned to the client adds to the taint.

        Args:
            tool: namespaced tool (or server/target) that produced it.
            labels: that tool's labels.
            findings: the guardrails' findings on the result (public `Finding` shape).
            raw: the result as the upstream sent it (before redaction), where finding spans point.
            sent: the call's arguments: a private value the client sent itself and got echoed back is not new.
            event: the exchange (audit event) id.
            principal: who called.
            now: epoch seconds.
            finding_ids: an id per finding (`<event>#<n>`: the n-th finding of the audit event), in order.
        """
        ids = dict(zip(map(id, findings), finding_ids, strict=False))
        private = [f for f in findings if f.detector in self._private]
        untrusted = [f for f in findings if f.detector in self._untrusted]
        values: list[str] = []
        if private:
            echoed = normalise(" ".join(walk(sent, max_depth=_WALK_DEPTH).strings)) if sent else ""
            kept: list[Finding] = []
            for finding, value in _spans(private, raw):
                if value is not None and echoed and normalise(value) in echoed:
                    continue
                kept.append(finding)
                if value is not None and finding.action not in _UNRELEASED:
                    values.append(value)
            private = kept
        marks: list[TaintMark] = []
        if private:
            marks.append(
                TaintMark(kind=PRIVATE, tool=tool, time=now, findings=_kinds(private), event=event,
                          principal=principal, finding_ids=_ids(private, ids))
            )  # fmt: skip
        if untrusted or "reads_untrusted" in labels:
            marks.append(
                TaintMark(kind=UNTRUSTED, tool=tool, time=now, findings=_kinds(untrusted), event=event,
                          principal=principal, finding_ids=_ids(untrusted, ids))
            )  # fmt: skip
        return Observed(marks=tuple(marks), values=tuple(values))


def _ids(findings: Sequence[Finding], ids: Mapping[int, str]) -> tuple[str, ...]:
    return tuple(ids[id(f)] for f in findings if id(f) in ids)


def _kinds(findings: Sequence[Finding]) -> tuple[str, ...]:
    return tuple(sorted({f"{f.detector}/{f.type}" for f in findings}))


def _first_of_each(marks: Sequence[TaintMark]) -> tuple[TaintMark, ...]:
    seen: dict[str, TaintMark] = {}
    for mark in marks:
        seen.setdefault(mark.kind, mark)
    return tuple(sorted(seen.values(), key=lambda m: m.time))


def _spans(findings: Sequence[Finding], raw: Any) -> list[tuple[Finding, str | None]]:
    """Each finding with the text it matched in the raw result (None when it is not a span or cannot be found)."""
    if raw is None or not any(f.start >= 0 for f in findings):
        return [(f, None) for f in findings]
    walked = walk(raw, max_depth=_WALK_DEPTH)
    strings = {format_path(path_parts(link)): s for s, link in zip(walked.strings, walked.links, strict=True)}
    out: list[tuple[Finding, str | None]] = []
    for finding in findings:
        text = strings.get(finding.path)
        if text is None or not 0 <= finding.start < finding.end <= len(text):
            out.append((finding, None))
        else:
            out.append((finding, text[finding.start : finding.end]))
    return out
