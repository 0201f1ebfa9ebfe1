"""The audit trail: every exchange and notable event, hash-chained per replica, in one or more sinks.

`AuditRecorder` observes the gateway (strict: a reply waits for its durable record); `query` reads the trail
(CLI and admin API); `verify` checks the chains; `bastion audit ...` is in `cli.py`.
"""

from __future__ import annotations

from bastion.audit.config import AuditConfig
from bastion.audit.event import AuditEvent, event_from_exchange, event_from_notice
from bastion.audit.recorder import AuditRecorder
from bastion.core.config import default_replica

__all__ = [
    "AuditConfig",
    "AuditEvent",
    "AuditRecorder",
    "default_replica",
    "event_from_exchange",
    "event_from_notice",
]
