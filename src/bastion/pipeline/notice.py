"""`Notice`: a notable event that is not a request/response pair (session start, upstream crash, alert...).

Exchanges are observed after the pipeline ran on a call; notices are everything else an auditor or an operator
must see. Any component may emit one through `Gateway.emit()`; every observer that has an `on_notice` hook gets it
(audit records it, metrics count it, the dashboard streams it). Observers run outside the chain.

Rules:
- `kind` is a small fixed vocabulary (the `NoticeKind` values), used as an audit field and a metric label.
- `detail` holds non-secret facts only: names, counts, reasons, hashes. Never a token, key or payload value.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

# Re-exported: the records live at the bottom layer, so a feature below the pipeline (guard) can emit one.
from bastion.types import Notice as Notice
from bastion.types import NoticeKind as NoticeKind


@runtime_checkable
class NoticeObserver(Protocol):
    """Something that wants notices (audit, metrics, anomaly detection, the dashboard feed)."""

    async def on_notice(self, notice: Notice) -> None:
        """Record the notice. Raising is logged by the emitter; a notice never fails a call."""
        ...
