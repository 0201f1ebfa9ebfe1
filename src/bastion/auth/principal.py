"""`Principal`: who is calling. Produced by an authenticator, consumed by policy, audit and rate limits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


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


def token_digest(token: str) -> str:
    """A short sha256 of a presented token: tells tokens apart in the audit trail, reveals nothing of them."""
    return hashlib.sha256(b"bastion-token\n" + token.encode()).hexdigest()[:32]


def binding_of(principal: Principal) -> str:
    """What a session remembers of the credential that opened it: any other credential gets the unknown-session
    answer, same principal or not."""
    return principal.credential or f"{principal.method}:{principal.name}"


ANONYMOUS = Principal(name="anonymous", method="none")
"""The principal used when authentication is switched off (loopback only)."""
