"""Per-request context variables, so log lines, spans and audit records carry the same ids.

The session sets `CURRENT_EXCHANGE` at the start of every exchange (one contextvar write, whatever telemetry is
configured); each client request runs in its own task, so the value never leaks into another request. The HTTP
trace middleware sets `INCOMING_TRACEPARENT` from the request header before the session sees the message.
This module imports nothing heavy: the session imports it on the hot path. It sits in the pipeline layer, below
the core that sets it and the telemetry that reads it.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from bastion.pipeline.exchange import Exchange

CURRENT_EXCHANGE: Final[ContextVar[Exchange | None]] = ContextVar("bastion_exchange", default=None)
"""The exchange the current task is serving (None outside a client request)."""

INCOMING_TRACEPARENT: Final[ContextVar[tuple[str, str] | None]] = ContextVar(
    "bastion_incoming_traceparent", default=None
)
"""`(traceparent, tracestate)` HTTP headers of the client request being served, when it sent them."""

SESSION_ID_PREFIX: Final = 12
"""Characters of a session id that logs and spans show. A (sealed) session id is a capability: never all of it."""


def current_ids() -> dict[str, str]:
    """The ids of the request being served: `session` (prefix), `exchange`, `trace_id`; empty outside one."""
    exchange = CURRENT_EXCHANGE.get()
    if exchange is None:
        return {}
    ids = {
        "session": exchange.session.session_id[:SESSION_ID_PREFIX],
        "exchange": exchange.exchange_id,
    }
    if exchange.trace_id:
        ids["trace_id"] = exchange.trace_id
    return ids
