"""The `Finding` record: what a detector (or a policy in monitor mode) noticed in one message."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.StrEnum):
    """How bad a finding is; drives default actions and alert thresholds."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One thing a detector found. Never holds the matched secret itself, only where it is."""

    detector: str
    """Detector name, e.g. `secrets`, `pii`, `injection`, `poisoning`, `policy`."""
    type: str
    """What was found, e.g. `aws_access_key`, `email`, `instruction_override`."""
    severity: Severity = Severity.MEDIUM
    """How bad it is."""
    confidence: float = 1.0
    """0..1, how sure the detector is."""
    path: str = "$"
    """JSON path of the string it was found in, e.g. `$.arguments.body` or `$.content[0].text`."""
    start: int = -1
    """Start offset of the match in that string (-1 when not a span)."""
    end: int = -1
    """End offset of the match in that string (-1 when not a span)."""
    action: str = ""
    """The action the guard chose for this finding (`block`, `redact`, `flag`, `ask`), filled in by the guard."""

    def to_dict(self) -> dict[str, object]:
        """The wire and audit form: no matched text, ever."""
        return {
            "detector": self.detector,
            "type": self.type,
            "severity": str(self.severity),
            "confidence": round(self.confidence, 3),
            "path": self.path,
            "action": self.action,
        }
