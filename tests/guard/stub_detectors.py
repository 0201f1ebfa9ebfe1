"""Tiny stand-ins for the built-in detectors, so stage and screen tests do not depend on their heuristics.

They use the built-in names (`secrets`, `pii`, `injection`, `poisoning`), so the default action table applies.
"""

from __future__ import annotations

import re

from bastion.guard.config import GuardrailsConfig
from bastion.guard.detector import ScanContext
from bastion.guard.engine import Guard
from bastion.guard.finding import Finding, Severity


class _Regex:
    def __init__(self, name: str, type_: str, pattern: str, severity: Severity) -> None:
        self.name = name
        self.type = type_
        self.regex = re.compile(pattern, re.IGNORECASE)
        self.severity = severity

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        return [
            Finding(
                detector=self.name,
                type=self.type,
                severity=self.severity,
                path=context.path,
                start=m.start(),
                end=m.end(),
            )
            for m in self.regex.finditer(text)
        ]


def stub_detectors() -> list[_Regex]:
    return [
        _Regex("secrets", "aws_access_key", r"\bAKIA[A-Z2-7]{16}\b", Severity.CRITICAL),
        _Regex("pii", "email", r"\b[\w.]+@[\w.]+\.\w+\b", Severity.LOW),
        _Regex("injection", "instruction_override", r"ignore (all )?previous instructions", Severity.HIGH),
        _Regex("poisoning", "hidden_instructions", r"<important>", Severity.CRITICAL),
    ]


def stub_guard(config: GuardrailsConfig | None = None) -> Guard:
    return Guard(config or GuardrailsConfig(), detectors=stub_detectors(), backend="re")
