"""The audit signing key in force: the configured one, or the Ed25519 key Bastion makes on first start.

Rules:
- An explicit `audit.signing_key` (usually `${file:...}` or `${env:...}`) always wins; `unsigned: true` means none.
- Otherwise the key lives in `audit.signing_key_file` (by default next to the state store). The gateway creates it
  when missing, with mode 0600, written whole and then linked into place (two processes starting at once share
  one key), and writes the public half to `<file>.pub` for auditors. Readers (`bastion audit verify`) never
  create one.
- With an in-memory state store and no key file, the key is made in memory only: it lives as long as the store.
- Only the fingerprint (`key_id`) and the public key are ever printed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

from bastion.audit.config import DEFAULT_KEY_FILE, AuditConfig
from bastion.audit.signing import Ed25519Key, SigningKey, signing_key
from bastion.errors import ConfigError
from bastion.state.config import StateConfig

logger = logging.getLogger("bastion.audit")


def key_file(audit: AuditConfig, state: StateConfig) -> Path | None:
    """Where the made-on-first-start key lives, or None when it would live in memory only."""
    if audit.signing_key_file:
        return Path(audit.signing_key_file)
    if state.backend == "embedded" and state.path != ":memory:":
        return Path(state.path).parent / DEFAULT_KEY_FILE
    if state.backend == "redis":
        return Path(".bastion") / DEFAULT_KEY_FILE
    return None


def public_file(path: Path) -> Path:
    """The public key's file next to a private key file."""
    return path.with_name(path.name + ".pub")


def _generate() -> tuple[Ed25519Key, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Ed25519Key(private=private), pem


def _create(path: Path) -> Ed25519Key | None:
    """Write a new key to `path` (0600); None when another process made it first.

    The key is written whole to a private temporary file and then hard-linked into place, which fails when the
    name exists: a process starting at the same moment never reads a half-written key.
    """
    key, pem = _generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        os.link(temporary, path)
    except FileExistsError:
        return None
    finally:
        temporary.unlink(missing_ok=True)
    public_file(path).write_text(key.public_pem(), encoding="utf-8")
    logger.warning("created the audit signing key %s (Ed25519, fingerprint %s)", path, key.key_id)
    return key


def _load(path: Path) -> Ed25519Key:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the audit signing key {path}", path="audit.signing_key_file") from exc
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("the audit signing key %s is readable by others; chmod 600 it", path)
    try:
        return Ed25519Key.from_private_pem(pem)
    except ConfigError as exc:
        raise ConfigError(f"{path} is not an Ed25519 private key", path="audit.signing_key_file") from exc


def audit_key(audit: AuditConfig, state: StateConfig, *, create: bool) -> SigningKey | None:
    """The key that signs checkpoints and prune anchors.

    Args:
        audit: The `audit:` section.
        state: The `state:` section (the default key lives next to its file).
        create: Make the key when missing (the gateway); readers pass False and get None instead.

    Raises:
        ConfigError: The configured key or key file cannot be used.
    """
    if audit.unsigned:
        return None
    explicit = signing_key(audit)
    if explicit is not None:
        return explicit
    path = key_file(audit, state)
    if path is None:
        return _generate()[0] if create else None
    if not path.exists():
        if not create:
            return None
        made = _create(path)
        if made is not None:
            return made
    return _load(path)


def public_key(audit: AuditConfig, state: StateConfig) -> Ed25519Key | None:
    """The default key's public half, from `<file>.pub` (an auditor's copy) or from the private key file."""
    path = key_file(audit, state)
    if path is None or audit.signing_key is not None or audit.unsigned:
        return None
    with contextlib.suppress(OSError):
        return Ed25519Key.from_public_pem(public_file(path).read_bytes())
    return _load(path) if path.exists() else None


def announce(key: SigningKey | None) -> None:
    """Say at start which key signs the trail: its fingerprint only, never the key."""
    if key is None:
        logger.warning("audit checkpoints are unsigned (audit.unsigned); only the witnesses hold their heads")
        return
    logger.info("audit trail signed with %s key %s", key.algorithm, key.key_id)
