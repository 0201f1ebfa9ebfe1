"""`Notice`: a notable event that is not a request/response pair (session start, upstream crash, alert...).

Exchanges are observed after the pipeline ran on a call; notices are everything else an auditor or an operator
must see. Any component may emit one through `Gateway.emit()`; every observer that has an `on_notice` hook gets it
(audit records it, metrics count it, the dashboard streams it). Observers run outside the chain.

Rules:
- `kind` is a small fixed vocabulary (the `NoticeKind` values), used as an audit field and a metric label.
- `detail` holds non-secret facts only: names, counts, reasons, hashes. Never a token, key or payload value.
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class NoticeKind(enum.StrEnum):
    """What happened."""

    SESSION_START = "session_start"
    SESSION_END = "session_end"
    AUTH_FAILURE = "auth_failure"
    POLICY_RELOAD = "policy_reload"
    TOOL_CHANGED = "tool_changed"
    """A tool definition differs from its pin (rug pull), or was approved/rejected."""
    TOOL_POISONED = "tool_poisoned"
    """A tool definition carries hidden instructions (poisoning, shadowing)."""
    UPSTREAM_STATE = "upstream_state"
    """An upstream connected, went down (crash) or was closed."""
    ALERT = "alert"
    """An anomaly on tool-use patterns."""
    PROTOCOL_ERROR = "protocol_error"
    """Malformed input from a client or an upstream (bad JSON, invalid JSON-RPC, oversize)."""
    APPROVAL = "approval"
    """A human approved or denied a held call."""
    API_KEY = "api_key"
    """An API key was created or revoked (CLI or admin API), and by whom."""
    NOTIFICATION = "notification"
    """A client notification (`notifications/cancelled` and whether it cancelled anything, `initialized`...)."""
    SERVER_REQUEST = "server_request"
    """An upstream's request to the client (sampling, elicitation, roots) and who answered it, how."""
    GUARDRAIL = "guardrail"
    """A guardrail found something on a channel outside routed calls (errors, logs, relayed requests, lists)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice:
    """One notable event."""

    kind: NoticeKind
    """What happened."""
    detail: dict[str, Any] = field(default_factory=dict)
    """Non-secret facts about it (reason, counts, hashes, rule ids)."""
    session_id: str = ""
    """Bastion's session id, when the event belongs to a client session."""
    principal: str = ""
    """Principal name, when known."""
    roles: tuple[str, ...] = ()
    """Roles of that principal."""
    server: str = ""
    """Upstream server name, when the event concerns one."""
    target: str = ""
    """Tool or prompt name (upstream-local) or resource URI."""
    transport: str = ""
    """Client transport, when the event belongs to a client session."""
    remote: str = ""
    """Client address, when known."""
    severity: str = "info"
    """`info`, `warning` or `critical` (alerts, crashes)."""
    notice_id: str = field(default_factory=lambda: os.urandom(16).hex())
    """Unique id (the audit event id)."""
    time: float = field(default_factory=time.time)
    """Wall-clock time of the event (epoch seconds)."""


@runtime_checkable
class NoticeObserver(Protocol):
    """Something that wants notices (audit, metrics, anomaly detection, the dashboard feed)."""

    async def on_notice(self, notice: Notice) -> None:
        """Record the notice. Raising is logged by the emitter; a notice never fails a call."""
        ...
