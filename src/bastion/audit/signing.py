"""Signing keys for checkpoints and prune anchors: HMAC-SHA256 (shared secret) or Ed25519 (PEM private key).

The key comes from `audit.signing_key` (usually `${file:...}`); only its fingerprint (`key_id`) is ever stored.
An auditor without the private key verifies Ed25519 anchors with the public key alone.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
from typing import TYPE_CHECKING, Final

from bastion.audit.chain import Anchor
from bastion.audit.config import AuditConfig
from bastion.errors import ConfigError

if TYPE_CHECKING:
    # `cryptography` costs about 7 MB of RSS; only Ed25519 keys need it, so it is imported where they are made.
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

HMAC: Final = "hmac-sha256"
ED25519: Final = "ed25519"


class HmacKey:
    """Signs and verifies with one shared secret; the key id is an HMAC of a constant, not a hash of the key."""

    algorithm = HMAC

    def __init__(self, secret: str | bytes) -> None:
        self._secret = secret.encode() if isinstance(secret, str) else secret
        if len(self._secret) < 16:
            raise ConfigError("an HMAC audit signing key needs at least 16 bytes", path="audit.signing_key")
        self.key_id = hmac.new(self._secret, b"bastion-audit-key-id", hashlib.sha256).hexdigest()[:16]

    def _mac(self, anchor: Anchor) -> str:
        return hmac.new(self._secret, anchor.payload(), hashlib.sha256).hexdigest()

    def sign(self, anchor: Anchor) -> Anchor:
        return dataclasses.replace(anchor, algorithm=HMAC, key_id=self.key_id, signature=self._mac(anchor))

    def verify(self, anchor: Anchor) -> bool:
        return anchor.algorithm == HMAC and hmac.compare_digest(anchor.signature, self._mac(anchor))

    def knows(self, key_id: str) -> bool:
        return key_id == self.key_id


class Ed25519Key:
    """Signs with a private key, or (built from a public key) only verifies."""

    algorithm = ED25519

    def __init__(self, *, private: Ed25519PrivateKey | None = None, public: Ed25519PublicKey | None = None):
        if private is not None:
            public = private.public_key()
        if public is None:
            raise ValueError("an Ed25519 key needs a private or a public key")
        from cryptography.hazmat.primitives import serialization

        self._private = private
        self._public = public
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]

    @classmethod
    def from_private_pem(cls, pem: str | bytes) -> Ed25519Key:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        try:
            key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, None)
        except (ValueError, TypeError) as exc:
            raise ConfigError("cannot load the Ed25519 private key", path="audit.signing_key") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError("the audit signing key is not an Ed25519 key", path="audit.signing_key")
        return cls(private=key)

    @classmethod
    def from_public_pem(cls, pem: str | bytes) -> Ed25519Key:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
        except (ValueError, TypeError) as exc:
            raise ConfigError("cannot load the Ed25519 public key") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError("the public key is not an Ed25519 key")
        return cls(public=key)

    def public_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return self._public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def sign(self, anchor: Anchor) -> Anchor:
        if self._private is None:
            raise ValueError("this Ed25519 key can only verify")
        signature = base64.b64encode(self._private.sign(anchor.payload())).decode()
        return dataclasses.replace(anchor, algorithm=ED25519, key_id=self.key_id, signature=signature)

    def verify(self, anchor: Anchor) -> bool:
        from cryptography.exceptions import InvalidSignature

        if anchor.algorithm != ED25519:
            return False
        try:
            self._public.verify(base64.b64decode(anchor.signature, validate=True), anchor.payload())
        except (InvalidSignature, ValueError):
            return False
        return True

    def knows(self, key_id: str) -> bool:
        return key_id == self.key_id


class KeyRing:
    """Verifies with whichever of several public keys signed an anchor: one per replica when replicas keep keys
    of their own, or the old and the new key across a rotation."""

    def __init__(self, keys: list[Ed25519Key]) -> None:
        self._keys = {k.key_id: k for k in keys}
        self.key_id = ",".join(self._keys)
        """Every fingerprint, for messages."""

    def knows(self, key_id: str) -> bool:
        return key_id in self._keys

    def verify(self, anchor: Anchor) -> bool:
        key = self._keys.get(anchor.key_id)
        return key is not None and key.verify(anchor)


SigningKey = HmacKey | Ed25519Key


def signing_key(config: AuditConfig) -> SigningKey | None:
    """The configured key, or None; raises `ConfigError` (path `audit.signing_key`) for a bad one."""
    if config.signing_key is None:
        return None
    secret = config.signing_key.get_secret_value()
    if config.signing_algorithm == ED25519:
        return Ed25519Key.from_private_pem(secret)
    return HmacKey(secret)
