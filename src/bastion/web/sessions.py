"""Dashboard logins: a random session token in an HttpOnly, SameSite=Strict cookie, its record in the key-value store.

Rules:
- The cookie holds 256 random bits and nothing else; the store keys the record by the token's SHA-256, so a
  leaked store dump cannot be replayed as cookies.
- The record holds the principal's name, roles, authentication method and key id, never the credential that
  logged in. It expires with the cookie (`ui.session_seconds`); logout deletes it at once.
- Each session has its own CSRF token, compared in constant time on every state-changing request.
- With a shared store (Redis) a login on one replica is valid on every replica.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from bastion.state.base import KeyValueStore
from bastion.types import Principal

COOKIE_NAME: Final = "bastion_ui"
"""Name of the dashboard session cookie."""
CSRF_HEADER: Final = "x-csrf-token"
"""Header carrying the CSRF token on JSON requests made with the session cookie."""
CSRF_FIELD: Final = "csrf_token"
"""Form field carrying the CSRF token on HTML form posts."""
_KEY_PREFIX: Final = "ui-session:"


@dataclass(frozen=True, slots=True, kw_only=True)
class UISession:
    """A dashboard login (no credential in it)."""

    principal: str
    """Who logged in."""
    roles: tuple[str, ...]
    """Roles the credential carried at login (policy-granted roles are looked up on every request)."""
    method: str
    """`api_key` or `jwt`."""
    key_id: str
    """API key id (checked for revocation on every request) or token id."""
    csrf: str
    """This session's CSRF token."""
    created: float
    expires: float

    def principal_object(self) -> Principal:
        return Principal(
            name=self.principal, roles=frozenset(self.roles), method=self.method, key_id=self.key_id
        )

    def csrf_ok(self, token: str | None) -> bool:
        """Constant-time comparison with the session's CSRF token."""
        return token is not None and hmac.compare_digest(token.encode(), self.csrf.encode())


def _store_key(token: str) -> str:
    return _KEY_PREFIX + hashlib.sha256(token.encode()).hexdigest()


class UISessions:
    """Create, look up and end dashboard logins."""

    def __init__(
        self, store: KeyValueStore, *, lifetime: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self.lifetime = lifetime
        self._clock = clock

    async def create(self, principal: Principal, *, not_after: float | None = None) -> tuple[str, UISession]:
        """Start a session for an authenticated principal. Returns (cookie token, session).

        Args:
            principal: who logged in.
            not_after: epoch seconds the session must not outlive (a token's `exp`).
        """
        token = secrets.token_urlsafe(32)
        now = self._clock()
        lifetime = self.lifetime if not_after is None else max(0.0, min(self.lifetime, not_after - now))
        session = UISession(
            principal=principal.name,
            roles=tuple(sorted(principal.roles)),
            method=principal.method,
            key_id=principal.key_id,
            csrf=secrets.token_urlsafe(32),
            created=now,
            expires=now + lifetime,
        )
        record: dict[str, Any] = {
            "principal": session.principal,
            "roles": list(session.roles),
            "method": session.method,
            "key_id": session.key_id,
            "csrf": session.csrf,
            "created": session.created,
            "expires": session.expires,
        }
        await self._store.set(_store_key(token), json.dumps(record).encode(), ttl=max(lifetime, 1.0))
        return token, session

    async def get(self, token: str | None) -> UISession | None:
        """The live session of a cookie value; None when absent, unknown, malformed or expired."""
        if not token or len(token) > 128:
            return None
        raw = await self._store.get(_store_key(token))
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            session = UISession(
                principal=str(record["principal"]),
                roles=tuple(str(r) for r in record["roles"]),
                method=str(record["method"]),
                key_id=str(record["key_id"]),
                csrf=str(record["csrf"]),
                created=float(record["created"]),
                expires=float(record["expires"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > self._clock() else None

    async def end(self, token: str | None) -> None:
        """Log out: the record is gone, so the cookie is worthless even if it was copied."""
        if token:
            await self._store.delete(_store_key(token))
