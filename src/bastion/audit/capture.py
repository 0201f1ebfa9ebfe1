"""`capture_audit()`: the audit events a gateway would record, kept in memory for tests (like structlog's
`capture_logs`), so users can assert on what their own policies and guardrails leave in the trail.

Example:
    audit = capture_audit()
    async with running_gateway({"calc": server}, observers=[audit]) as gw:
        ...
    assert audit.of_kind("exchange")[0].outcome == "deny"
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bastion.audit.event import AuditEvent, event_from_exchange, event_from_notice
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.notice import Notice


@dataclass(slots=True)
class CapturedAudit:
    """An exchange and notice observer that keeps every event it would have written (unchained)."""

    max_argument_bytes: int = 4096
    include_results: bool = True
    events: list[AuditEvent] = field(default_factory=list)

    async def on_exchange(self, exchange: Exchange) -> None:
        self.events.append(
            event_from_exchange(
                exchange, max_argument_bytes=self.max_argument_bytes, include_results=self.include_results
            )
        )

    async def on_notice(self, notice: Notice) -> None:
        self.events.append(event_from_notice(notice))

    def of_kind(self, kind: str) -> list[AuditEvent]:
        """Events of one kind (`exchange`, `session_start`...), in order."""
        return [e for e in self.events if e.kind == kind]


def capture_audit(*, max_argument_bytes: int = 4096, include_results: bool = True) -> CapturedAudit:
    """A fresh in-memory audit capture to pass as a gateway observer."""
    return CapturedAudit(max_argument_bytes=max_argument_bytes, include_results=include_results)
