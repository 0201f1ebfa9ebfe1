"""Sealed session ids: a handshake-era session that lands on another replica keeps working.

With `cluster.session_secret` set, a session id is the session's own negotiated state (principal name and roles,
protocol version, client capabilities and info), encrypted and authenticated with AES-GCM under a key derived
once at start-up (HKDF-SHA256) from that shared secret. Any replica can open it and rebuild the session locally:
upstream connections are pooled per replica, so nothing else is needed. Without the secret, ids are random tokens.

Rules:
- Only replicas that share the secret can open an id; a forged or altered id opens to nothing (404).
- The id carries no credential; a request on a rebuilt session must still authenticate as the sealed principal.
- Ids expire: the sealed creation time is checked against `max_age_seconds`.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from typing import Any, Final

import orjson

_PREFIX: Final = "s1."
_NONCE_BYTES: Final = 12


@dataclass(frozen=True, slots=True, kw_only=True)
class SealedState:
    """What a session id carries."""

    principal: str
    roles: tuple[str, ...]
    method: str
    protocol_version: str
    client_capabilities: dict[str, Any]
    client_name: str
    client_version: str
    created: float
    credential: str = ""
    """`auth.principal.binding_of` of the credential that opened the session: only it may use the id."""


class SessionSealer:
    """Seals and opens session ids with a key derived from the cluster secret."""

    def __init__(self, secret: str, *, max_age_seconds: float = 86400.0) -> None:
        # Imported here, not at module level: `cryptography` costs about 7 MB of RSS and only clusters seal ids.
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"bastion-session-id-v1").derive(
            secret.encode()
        )
        self._aead = AESGCM(key)
        self.max_age = max_age_seconds

    def seal(self, state: SealedState) -> str:
        payload = orjson.dumps(
            [
                state.principal,
                list(state.roles),
                state.method,
                state.protocol_version,
                state.client_capabilities,
                state.client_name,
                state.client_version,
                state.created,
                state.credential,
            ]
        )
        nonce = os.urandom(_NONCE_BYTES)
        token = nonce + self._aead.encrypt(nonce, payload, _PREFIX.encode())
        return _PREFIX + base64.urlsafe_b64encode(token).decode().rstrip("=")

    def open(self, session_id: str) -> SealedState | None:
        """The sealed state, or None for anything forged, altered, expired or not ours."""
        from cryptography.exceptions import InvalidTag  # loaded already: __init__ imported cryptography

        if not session_id.startswith(_PREFIX) or len(session_id) > 8192:
            return None
        body = session_id[len(_PREFIX) :]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            payload = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _PREFIX.encode())
            fields = orjson.loads(payload)
            state = SealedState(
                principal=fields[0],
                roles=tuple(fields[1]),
                method=fields[2],
                protocol_version=fields[3],
                client_capabilities=fields[4],
                client_name=fields[5],
                client_version=fields[6],
                created=float(fields[7]),
                credential=str(fields[8]),
            )
        except (ValueError, InvalidTag, IndexError, TypeError, orjson.JSONDecodeError):
            return None
        if time.time() - state.created > self.max_age:
            return None
        return state
