"""`AuditGateStage`: in strict audit mode, refuse a call before it reaches the upstream while the trail is down.

Why: strict audit already withholds a reply whose event is not durable, but by then the upstream has run the
tool. With the trail known to be failing, running the tool at all would be acting without a record, so the call
is refused up front (fail closed). The rejected exchange is still observed, and that write attempt is how the
recorder notices the store is back.
"""

from __future__ import annotations

from typing import Protocol

from bastion.errors import AuditUnavailable
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import BaseStage
from bastion.pipeline.verdicts import PASS, Reject, Verdict


class _Health(Protocol):
    @property
    def healthy(self) -> bool:
        """False while any audit sink is failing."""
        ...


class AuditGateStage(BaseStage):
    """Second in the chain (after authentication): cheap, and it must stop work before any upstream sees it."""

    name = "audit"

    def __init__(self, recorder: _Health) -> None:
        self._recorder = recorder

    async def on_request(self, exchange: Exchange) -> Verdict:
        if self._recorder.healthy:
            return PASS
        return Reject(
            error=AuditUnavailable("the audit trail is unavailable; calls are refused until it is back"),
            explanation="strict audit: a sink is failing",
        )
