"""Stable reasons an authentication fails, and the one way to raise them.

The reason goes into `AuthError.data["authFailure"]` (and from there to audit and metrics); the message is
generic. Neither ever contains the token or any part of it.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any, Protocol

from bastion.errors import AuthError

_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


class AuthFailure(enum.StrEnum):
    """Why a credential was refused."""

    MISSING = "missing"
    MALFORMED = "malformed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    BAD_SIGNATURE = "bad_signature"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_ISSUER = "wrong_issuer"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    UNKNOWN_KEY = "unknown_key"
    REVOKED = "revoked"
    MISSING_CLAIM = "missing_claim"
    METHOD_DISABLED = "method_disabled"
    KEYS_UNAVAILABLE = "keys_unavailable"


class FailureHook(Protocol):
    """Told of every refusal (audit notices): the reason, client address, path and `credential_facts`."""

    def __call__(
        self, reason: str, client: str, path: str, facts: Mapping[str, Any] | None = None, /
    ) -> None: ...


def auth_error(
    failure: AuthFailure, *, key_id: str = "", expired_key: Mapping[str, Any] | None = None
) -> AuthError:
    """The error for one failure: a fixed message and the reason in `data`.

    Args:
        failure: Why.
        key_id: The public id of the API key presented, when Bastion knows that key (never its secret).
        expired_key: The key's facts (`ApiKeyInfo.to_dict()`), only the first time its expiry is observed.
    """
    message = "authentication required" if failure is AuthFailure.MISSING else "invalid credentials"
    data: dict[str, Any] = {"authFailure": str(failure)}
    if key_id:
        data["keyId"] = key_id
    if expired_key is not None:
        data["expiredKey"] = dict(expired_key)
    return AuthError(message, data=data)


def credential_facts(error: AuthError) -> dict[str, Any]:
    """What an audit notice may say about the refused credential: the key id and a first expiry, nothing else."""
    data = error.data or {}
    facts: dict[str, Any] = {}
    key_id = data.get("keyId")
    if isinstance(key_id, str) and _KEY_ID.fullmatch(key_id):
        facts["keyId"] = key_id
    expired = data.get("expiredKey")
    if isinstance(expired, Mapping) and "keyId" in facts:
        facts["expiredKey"] = {k: expired.get(k) for k in ("principal", "roles", "created_at", "expires_at")}
    return facts


def failure_of(error: AuthError) -> AuthFailure:
    """The failure reason carried by an `AuthError` (MALFORMED when it carries none)."""
    raw = (error.data or {}).get("authFailure")
    try:
        return AuthFailure(str(raw))
    except ValueError:
        return AuthFailure.MALFORMED
