"""The `injection` detector: prompt injection in tool results (and arguments), by attack class, plus hidden text.

A fast heuristic layer that always runs: the phrase rules of `injection_rules.py` and the hiding places of
`obfuscation.py`, all in the engine's single pass. Hidden text is recovered and checked with the same phrases, so
`aWdub3JlIGFsbCBwcmV2aW91cyBpbnN0cnVjdGlvbnM=` or tag-character smuggling count as the instruction they carry.

The learned model is a separate detector, `classifier` (`bastion.guard.detectors.classifier`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Final

from bastion.guard.config import InjectionConfig
from bastion.guard.detector import Hit, Rule, ScanContext
from bastion.guard.detectors import obfuscation as ob
from bastion.guard.detectors.discussion import soften
from bastion.guard.detectors.injection_rules import CORE_RULES, INSTRUCTION_TYPES, OUTPUT_RULES
from bastion.guard.detectors.standalone import StandaloneScan
from bastion.guard.finding import Finding, Severity

MAX_FINDINGS_PER_STRING: Final = 16
"""Enough to explain a decision; an adversarial string repeating a phrase 10,000 times stays cheap to report."""


class PhraseDetector(StandaloneScan):
    """Shared machinery of `injection` and `poisoning`: phrase rules plus hidden-text recovery."""

    name = "phrases"
    severity_overrides: dict[str, Severity] = {}
    """Per finding type, a severity that replaces the rule's (poisoning raises some: a tool definition has no
    business containing them at all)."""

    def __init__(self, rules: Sequence[Rule], *, decode: bool = True, max_decoded_blobs: int = 16) -> None:
        self.rules: tuple[Rule, ...] = tuple(
            r for r in rules if decode or r.type not in ("encoded_base64", "encoded_hex")
        )
        self._max_blobs = max_decoded_blobs

    def confirm(self, text: str, hits: Sequence[Hit], context: ScanContext) -> list[Finding]:
        """Phrase hits become findings directly; hiding places are opened and judged by what they hide."""
        found: list[Finding] = []
        hidden: dict[str, list[Hit]] = {}
        for hit in hits:
            rule = self.rules[hit.rule]
            if rule.type in ob.OBFUSCATION_TYPES:
                hidden.setdefault(rule.type, []).append(hit)
                continue
            found.append(
                self._finding(rule.type, rule.severity, hit.match.start(), hit.match.end(), context, 0.8)
            )
        if hidden:
            visible = any(f.type in INSTRUCTION_TYPES for f in found)
            found.extend(self._hidden(text, hidden, context, visible))
        return _dedupe(found)

    def _finding(
        self, type_: str, severity: Severity, start: int, end: int, context: ScanContext, confidence: float
    ) -> Finding:
        return Finding(
            detector=self.name,
            type=type_,
            severity=self.severity_overrides.get(type_, severity),
            confidence=confidence,
            path=context.path,
            start=start,
            end=end,
        )

    def _hidden(
        self, text: str, hidden: dict[str, list[Hit]], context: ScanContext, visible_before: bool
    ) -> list[Finding]:
        out: list[Finding] = []
        budget = self._max_blobs
        for kind in ("encoded_base64", "encoded_hex"):
            for hit in hidden.get(kind, ()):
                if budget <= 0:
                    break
                budget -= 1
                decoded = ob.decode_blob(kind, hit.match.group(0))
                if decoded is None:
                    continue
                start, end = hit.match.span()
                if ob.is_instruction(decoded):
                    out.append(
                        self._finding("obfuscated_instruction", Severity.HIGH, start, end, context, 0.9)
                    )
                elif ob.looks_actionable(decoded):
                    out.append(self._finding("encoded_text", Severity.MEDIUM, start, end, context, 0.6))
        for hit in hidden.get("unicode_tags", ()):
            start, end = hit.match.span()
            if start > 0 and text[start - 1] == "\U0001f3f4" and end - start <= 8:
                continue  # subdivision flag emoji (England, Scotland, Wales) are tag sequences
            revealed = ob.decode_tags(hit.match.group(0))
            kind = "obfuscated_instruction" if ob.is_instruction(revealed) else "unicode_tags"
            out.append(self._finding(kind, Severity.CRITICAL, start, end, context, 0.95))
        if "invisible_characters" in hidden:
            first = hidden["invisible_characters"][0].match
            if not visible_before and ob.is_instruction(ob.strip_invisible(text)):
                out.append(
                    self._finding(
                        "obfuscated_instruction", Severity.HIGH, first.start(), first.end(), context, 0.9
                    )
                )
            elif len(hidden["invisible_characters"]) >= 3:
                out.append(
                    self._finding(
                        "invisible_characters", Severity.LOW, first.start(), first.end(), context, 0.5
                    )
                )
        if "bidi_control" in hidden:
            first = hidden["bidi_control"][0].match
            out.append(
                self._finding("bidi_control", Severity.MEDIUM, first.start(), first.end(), context, 0.7)
            )
        if "homoglyph" in hidden:
            out.extend(self._homoglyphs(text, hidden["homoglyph"], context, visible_before))
        return out

    def _homoglyphs(
        self, text: str, hits: list[Hit], context: ScanContext, visible_before: bool
    ) -> list[Finding]:
        if not visible_before and ob.is_instruction(ob.unconfuse(text)):
            first = hits[0].match
            return [
                self._finding(
                    "obfuscated_instruction", Severity.HIGH, first.start(), first.end(), context, 0.85
                )
            ]
        words: list[tuple[int, int]] = []
        for hit in hits:
            span = ob.mixed_script_word(text, hit.match.start(), hit.match.end())
            if span is not None and span not in words:
                words.append(span)
        return [self._finding("homoglyph", Severity.MEDIUM, s, e, context, 0.6) for s, e in words[:4]]


class InjectionDetector(PhraseDetector):
    """Prompt injection in what tools return (and in what agents send)."""

    name = "injection"

    def __init__(self, config: InjectionConfig | None = None) -> None:
        self.config = config if config is not None else InjectionConfig()
        super().__init__(
            (*CORE_RULES, *OUTPUT_RULES, *ob.OBFUSCATION_RULES),
            decode=self.config.decode,
            max_decoded_blobs=self.config.max_decoded_blobs,
        )

    def confirm(self, text: str, hits: Sequence[Hit], context: ScanContext) -> list[Finding]:
        """Phrase findings, lowered when the text quotes or discusses the attack (`discussion.soften`)."""
        return soften(text, super().confirm(text, hits, context))


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """Overlapping findings of one type merge into the widest; the list is capped."""
    if len(findings) <= 1:
        return findings
    findings.sort(key=lambda f: (f.type, f.start, -f.end))
    merged: list[Finding] = []
    for f in findings:
        last = merged[-1] if merged else None
        if last is not None and last.type == f.type and f.start < last.end:
            if f.end > last.end:
                merged[-1] = replace(last, end=f.end)
            continue
        merged.append(f)
    merged.sort(key=lambda f: f.start)
    return merged[:MAX_FINDINGS_PER_STRING]
