"""`TaintStore`: a session's taint marks and private-value fingerprints, kept in the `StateStore`.

Rules:
- One member set per session (`flow:<session id>`): `m:<event>:<kind>` members hold marks, `f:<len>:<digest>`
  members hold fingerprints (their value is the event id of the result they came from). Adding is one atomic
  `put_members`, so concurrent calls of one session never lose each other's marks and no read-modify-write is needed.
- The salt of a session's fingerprints is random, set once (`only_if_absent`) under `flow-salt:<session id>`.
- With Redis every replica sees the same taint, so a session that moves to another replica keeps it.
- Nothing here holds a value: marks carry tool, time, finding kinds and event ids; fingerprints are salted hashes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from bastion.policy.fingerprints import Fingerprint, fingerprints
from bastion.policy.flow import SessionTaint, TaintMark
from bastion.state.base import KeyValueStore, MemberStore

_SET: Final = "flow:"
_SALT: Final = "flow-salt:"
SALT_BYTES: Final = 16
MAX_CACHED_SALTS: Final = 10_000
"""Session salts kept in process memory."""
MAX_FINGERPRINTS: Final = 4096
"""Fingerprints kept per session; past this, new private values only taint (the CEL rules still apply)."""


class TaintBackend(KeyValueStore, MemberStore, Protocol):
    """What the taint store needs of shared state: the salt (key-value) and the marks (members)."""


class TaintStore:
    """Load and extend the taint of sessions."""

    def __init__(self, store: TaintBackend, *, ttl: float) -> None:
        self._store = store
        self.ttl = ttl
        self._salts: dict[str, bytes] = {}
        """Salts already read: a session's salt never changes once set, so one store round trip is saved."""

    async def load(self, session_id: str) -> SessionTaint:
        """The session's taint (empty for a new session)."""
        members = await self._store.list_members(_SET + session_id)
        if not members:
            return SessionTaint()
        marks: list[TaintMark] = []
        prints: dict[Fingerprint, str] = {}
        for member, value in members.items():
            if member.startswith("m:"):
                marks.append(TaintMark.from_dict(json.loads(value)))
            elif member.startswith("f:"):
                _, length, digest = member.split(":", 2)
                prints[(int(length), digest)] = value.decode()
        salt = await self._known_salt(session_id) if prints else b""
        marks.sort(key=lambda m: (m.time, m.event, m.kind))
        return SessionTaint(marks=tuple(marks), fingerprints=prints, salt=salt or b"")

    async def _known_salt(self, session_id: str) -> bytes:
        salt = self._salts.get(session_id)
        if salt is None:
            salt = await self._store.get(_SALT + session_id) or b""
            if salt:
                self._remember(session_id, salt)
        return salt

    def _remember(self, session_id: str, salt: bytes) -> None:
        if len(self._salts) >= MAX_CACHED_SALTS:
            self._salts.clear()
        self._salts[session_id] = salt

    async def _salt(self, session_id: str) -> bytes:
        """The session's salt, created on first use; its expiry is pushed back with every use, like the
        fingerprints it keys, so fingerprints never outlive their salt."""
        key = _SALT + session_id
        salt = self._salts.get(session_id)
        if salt is None:
            await self._store.set(key, os.urandom(SALT_BYTES), ttl=self.ttl, only_if_absent=True)
            salt = await self._store.get(key)
            if salt is None:
                raise RuntimeError("the fingerprint salt vanished right after it was set")
            self._remember(session_id, salt)
        await self._store.set(key, salt, ttl=self.ttl)
        return salt

    async def add(
        self, session_id: str, marks: Sequence[TaintMark], values: Iterable[str], *, known: int = 0
    ) -> int:
        """Record marks and the fingerprints of released private values; returns fingerprints added.

        Args:
            session_id: Bastion's session id.
            marks: new marks (each keyed by its event and kind, so a retry does not duplicate it).
            values: private values that reached the client; only their salted fingerprints are stored.
            known: fingerprints the session already holds (to respect `MAX_FINGERPRINTS`).
        """
        entries: dict[str, bytes] = {
            f"m:{m.event}:{m.kind}": json.dumps(m.to_dict(), sort_keys=True).encode() for m in marks
        }
        values = list(values)
        added = 0
        if values and known < MAX_FINGERPRINTS:
            salt = await self._salt(session_id)
            source = next((m.event for m in marks if m.kind == "private"), "").encode()
            for value in values:
                for length, digest in fingerprints(value, salt):
                    if known + added >= MAX_FINGERPRINTS:
                        break
                    entries[f"f:{length}:{digest}"] = source
                    added += 1
        if entries:
            await self._store.put_members(_SET + session_id, entries, ttl=self.ttl)
        return added

    async def forget(self, session_id: str) -> None:
        """Drop a session's taint (the session ended)."""
        self._salts.pop(session_id, None)
        await self._store.delete(_SALT + session_id)
        members = await self._store.list_members(_SET + session_id)
        if members:
            await self._store.remove_members(_SET + session_id, list(members))
