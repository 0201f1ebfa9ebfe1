"""API keys: `bst_<id>_<secret>`, stored as a salted hash in the `StateStore`, looked up by id.

Rules:
- The full key exists once, in the return value of `create()`; only its id, a per-key salt and
  HMAC-SHA256(salt, secret) are stored. The secret has 256 bits of entropy, so a slow hash buys nothing.
- Verification looks the record up by the id in the key (no scan) and compares digests in constant time.
- Revoked keys stay listed (for audit) and are refused; expired keys are refused, and the first refusal of
  an expired key is marked in its record (`expiry_seen_at`) so its expiry is audited once.
- Failures of a key Bastion knows carry its public id (`keyId`), never the secret.
- Nothing here logs, and no error message contains any part of the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from bastion.auth.failures import AuthFailure, auth_error
from bastion.state.base import RecordStore
from bastion.types import Principal

NAMESPACE: Final = "api_keys"
"""Record namespace of API keys."""

PREFIX: Final = "bst_"
"""Every Bastion API key starts with this, which also tells bearer API keys from JWTs."""

_KEY = re.compile(r"^bst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyInfo:
    """What is known about a key without its secret (safe to print and audit)."""

    key_id: str
    """Public id, the part after `bst_`."""
    principal: str
    """Principal the key authenticates as."""
    roles: tuple[str, ...]
    """Roles granted by the key."""
    created_at: float
    """Unix time of creation."""
    expires_at: float | None
    """Unix time after which the key is refused (None: never)."""
    revoked_at: float | None
    """Unix time of revocation (None: active)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.key_id,
            "principal": self.principal,
            "roles": list(self.roles),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }


def parse_duration(text: str) -> float:
    """`30d`, `12h`, `15m`, `90s`, `2w` -> seconds. Raises ValueError on anything else."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match.group(1)) <= 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30d, 12h, 15m)")
    return float(int(match.group(1)) * _UNITS[match.group(2)])


def _digest(salt: bytes, secret: str) -> str:
    return hmac.new(salt, secret.encode(), hashlib.sha256).hexdigest()


class ApiKeyStore:
    """Create, list, revoke and verify API keys kept in a `RecordStore`."""

    def __init__(self, store: RecordStore, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    async def create(
        self, principal: str, roles: list[str] | tuple[str, ...] = (), *, expires_in: float | None = None
    ) -> tuple[str, ApiKeyInfo]:
        """Mint a key. Returns (the full key, shown once; its info)."""
        if not principal or not principal.isprintable():
            raise ValueError("principal must be a non-empty printable name")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        now = float(self._clock())
        info = ApiKeyInfo(
            key_id=key_id,
            principal=principal,
            roles=tuple(roles),
            created_at=now,
            expires_at=None if expires_in is None else now + expires_in,
            revoked_at=None,
        )
        record = {**info.to_dict(), "salt": salt.hex(), "hash": _digest(salt, secret)}
        await self._store.put_record(NAMESPACE, key_id, record)
        return f"{PREFIX}{key_id}_{secret}", info

    async def list(self) -> list[ApiKeyInfo]:
        """Every key, revoked and expired ones included, without secrets."""
        return [_info(key_id, record) for key_id, record in await self._store.list_records(NAMESPACE)]

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when there is no such key."""
        record = await self._store.get_record(NAMESPACE, key_id)
        if record is None:
            return False
        if record.get("revoked_at") is None:
            await self._store.put_record(NAMESPACE, key_id, {**record, "revoked_at": float(self._clock())})
        return True

    async def verify(self, key: str) -> Principal:
        """The principal of a valid key; raises `AuthError` (malformed, unknown_key, revoked, expired)."""
        match = _KEY.fullmatch(key)
        if match is None:
            raise auth_error(AuthFailure.MALFORMED)
        key_id, secret = match.groups()
        record = await self._store.get_record(NAMESPACE, key_id)
        if record is None:
            # Same work as a real comparison, so timing does not tell unknown ids from wrong secrets.
            hmac.compare_digest(_digest(b"\0" * 16, secret), "0" * 64)
            raise auth_error(AuthFailure.UNKNOWN_KEY)
        try:
            expected = str(record["hash"])
            salt = bytes.fromhex(str(record["salt"]))
        except (KeyError, ValueError):
            raise auth_error(AuthFailure.UNKNOWN_KEY, key_id=key_id) from None
        if not hmac.compare_digest(_digest(salt, secret), expected):
            raise auth_error(AuthFailure.UNKNOWN_KEY, key_id=key_id)
        info = _info(key_id, record)
        if info.revoked_at is not None:
            raise auth_error(AuthFailure.REVOKED, key_id=key_id)
        if info.expires_at is not None and info.expires_at <= self._clock():
            first = await self._mark_expiry_seen(key_id, record)
            raise auth_error(
                AuthFailure.EXPIRED, key_id=key_id, expired_key=info.to_dict() if first else None
            )
        return Principal(
            name=info.principal,
            roles=frozenset(info.roles),
            method="api_key",
            key_id=key_id,
            credential=f"api_key:{key_id}",
            expires_at=info.expires_at,
        )

    async def usable(self, key_id: str) -> bool:
        """Whether the key still exists, is not revoked and has not expired (live sessions are swept with it)."""
        record = await self._store.get_record(NAMESPACE, key_id)
        if record is None:
            return False
        info = _info(key_id, record)
        return info.revoked_at is None and (info.expires_at is None or info.expires_at > self._clock())

    async def _mark_expiry_seen(self, key_id: str, record: dict[str, Any]) -> bool:
        """True only for the first caller to observe this key's expiry (across processes sharing the store),
        so its `api_key` expiry event is recorded once; a lost compare-and-set means another caller did it."""
        if record.get("expiry_seen_at") is not None:
            return False
        marked = {**record, "expiry_seen_at": float(self._clock())}
        return await self._store.replace_record(NAMESPACE, key_id, marked, expected=record)


def _info(key_id: str, record: dict[str, Any]) -> ApiKeyInfo:
    expires, revoked = record.get("expires_at"), record.get("revoked_at")
    return ApiKeyInfo(
        key_id=key_id,
        principal=str(record.get("principal", "")),
        roles=tuple(str(r) for r in record.get("roles", [])),
        created_at=float(record.get("created_at", 0.0)),
        expires_at=None if expires is None else float(expires),
        revoked_at=None if revoked is None else float(revoked),
    )
