"""Shared aliases and records at the bottom of the layer order, so every layer names them the same way.

Nothing here imports from Bastion; everything may import from here. `Principal` lives here because every
layer names the caller (exchanges, policy, transports, audit, telemetry), while authenticating is `bastion.auth`;
`Notice` lives here because features below the pipeline (guard) emit them (see `bastion.pipeline.notice`).
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass, field
from typing import Any, TypeAlias

JsonDict: TypeAlias = dict[str, Any]
"""One decoded JSON object (a JSON-RPC message, its params or result)."""

RequestId: TypeAlias = str | int
"""A JSON-RPC request id: a string or an integer, never null or bool on a request."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """An authenticated caller. Carries no credential, so it is safe to log and audit."""

    name: str
    """Stable identity: API key principal name, JWT `sub` (mapped by config), or the stdio local user."""
    roles: frozenset[str] = frozenset()
    """Roles granted directly or mapped from token claims."""
    method: str = "none"
    """How it authenticated: `api_key`, `jwt`, `local`, or `none` (auth switched off)."""
    key_id: str = ""
    """Public id of the API key or the JWT `jti`/`kid`, never the secret."""
    claims: dict[str, Any] = field(default_factory=dict)
    """Selected non-secret token claims (iss, aud, groups) for policy conditions."""
    credential: str = ""
    """The credential actually presented, safe to log and audit: `api_key:<key id>` or
    `jwt:<iss>|<sub>|<token digest>`; empty for `local` and `none`. A session is bound to it (`binding_of`)."""
    token_digest: str = ""
    """For a bearer token (JWT): `token_digest(token)`, so the audit trail names the exact token presented."""
    expires_at: float | None = None
    """When the presented credential stops being valid (JWT `exp`, the key's expiry), Unix seconds."""


ANONYMOUS = Principal(name="anonymous", method="none")
"""The principal used when authentication is switched off (loopback only)."""


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


def binding_of(principal: Principal) -> str:
    """What a session remembers of the credential that opened it: any other credential gets the unknown-session
    answer, same principal or not."""
    return principal.credential or f"{principal.method}:{principal.name}"
