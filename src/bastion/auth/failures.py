"""Stable reasons an authentication fails, and the one way to raise them.

The reason goes into `AuthError.data["authFailure"]` (and from there to audit and metrics); the message is
generic. Neither ever contains the token or any part of it.
"""

from __future__ import annotations

import enum

from bastion.errors import AuthError


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


def auth_error(failure: AuthFailure) -> AuthError:
    """The error for one failure: a fixed message and the reason in `data`."""
    message = "authentication required" if failure is AuthFailure.MISSING else "invalid credentials"
    return AuthError(message, data={"authFailure": str(failure)})


def failure_of(error: AuthError) -> AuthFailure:
    """The failure reason carried by an `AuthError` (MALFORMED when it carries none)."""
    raw = (error.data or {}).get("authFailure")
    try:
        return AuthFailure(str(raw))
    except ValueError:
        return AuthFailure.MALFORMED
