"""Stage results as values: `Pass | Mutate | Reject | Flag | Ask`.

Rules:
- A stage returns exactly one verdict per message; exceptions are for faults, never for denials.
- The first `Reject` wins and stops the chain.
- A `Mutate` replaces the message body (request params, or response result) for every stage after it.
- `Flag` records findings and lets the message through.
- `Ask` pauses the message until a human answers; no answer (or no way to ask) means `Reject`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bastion.errors import BastionError
from bastion.guard.finding import Finding


@dataclass(frozen=True, slots=True)
class Pass:
    """Nothing to do; the message goes on unchanged."""


PASS = Pass()


@dataclass(frozen=True, slots=True, kw_only=True)
class Mutate:
    """Replace the body: request `params` on the way out, the `result` on the way back."""

    body: dict[str, Any]
    """The new params (request path) or result (response path)."""
    findings: tuple[Finding, ...] = ()
    """Why it changed (e.g. redactions)."""
    explanation: str = ""
    """Human-readable reason, recorded for audit."""
    record: bool = True
    """False for a view the policy narrows (a list without the entries the caller may not see): not a change of
    the message worth a decision, so no decision is recorded and the outcome stays as it was."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Reject:
    """Refuse the message with `error`; the explanation goes to audit, never more than the error to the client."""

    error: BastionError
    """The error the client receives."""
    explanation: str = ""
    """Which rule or finding caused it, for audit."""
    findings: tuple[Finding, ...] = ()
    """Findings behind the rejection."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Flag:
    """Let it through, but record these findings (and count them)."""

    findings: tuple[Finding, ...] = ()
    explanation: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ask:
    """Hold the message until a human approves it (elicitation, or the dashboard's approvals queue)."""

    question: str
    """What the human is asked; must not contain secrets."""
    findings: tuple[Finding, ...] = ()
    explanation: str = ""
    ask_client: bool = False
    """Ask the calling client's user (elicitation) instead of an operator: user consent, opted into per rule.
    False (the default): the call waits for an operator (dashboard, admin API), never for the agent under check."""


Verdict = Pass | Mutate | Reject | Flag | Ask


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """One stage's verdict on one message, as recorded on the exchange for audit."""

    stage: str
    """Name of the stage that decided."""
    phase: str
    """`request` or `response`."""
    outcome: str
    """`pass`, `mutate`, `reject`, `flag`, `ask`, `approved`, `denied`, or `error`."""
    explanation: str = ""
    findings: tuple[Finding, ...] = field(default=())
