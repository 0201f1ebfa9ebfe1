"""`SessionRegistry`: which replica holds which handshake-era session, and which sessions were terminated.

A Streamable HTTP session of the handshake era lives in one replica's memory. The registry tells the cluster about
it through the `StateStore` (Redis for several replicas): who holds it (answering "session not found" with the
reason, counting the cluster's sessions), which replicas are alive (heartbeats), and which session ids were
DELETEd (so a sealed id can never be brought back to life on another replica).

Rules:
- Entries are keyed by a hash of the session id, never the id itself: a sealed id is the session's whole state,
  and the store, its events and its dumps must not hand it out.
- An entry lives `LIVENESS_SECONDS` unless the holding replica refreshes it (every `REFRESH_SECONDS`, for all its
  sessions at once): a replica that dies stops refreshing, and its sessions leave the count within that time.
  Its heartbeat goes sooner (`HEARTBEAT_LIVENESS_SECONDS`), so its clients learn that it is gone within seconds.
- A terminated (DELETEd) id is remembered as long as a sealed id can be opened at all (`session_max_age_seconds`),
  and the termination is announced so replicas holding a copy close it at once.
- Failures of the store are raised to the caller, who decides: restoring a session fails closed (no restore).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from bastion.state.base import KeyValueStore, MemberStore, PubSub

REFRESH_SECONDS: Final = 5.0
"""How often a replica refreshes its sessions' entries (all of them in one store call)."""
LIVENESS_SECONDS: Final = 20.0
"""How long a session entry lives without a refresh (a few missed refreshes, not one)."""
HEARTBEAT_SECONDS: Final = 1.0
"""How often a replica says it is alive (one small write)."""
HEARTBEAT_LIVENESS_SECONDS: Final = 5.0
"""How long a heartbeat lives: a replica silent for this long is gone, and its clients are told so."""
SESSIONS_KEY: Final = "cluster:sessions"
"""Members: session-id hashes, each with its holder (replica, principal)."""
REPLICAS_KEY: Final = "cluster:replicas"
"""Members: replica ids, each with its status (host, sessions, policy hash...)."""
REVOKED_PREFIX: Final = "cluster:revoked:"
"""Key/value entries of terminated session-id hashes."""
REVOKED_TOPIC: Final = "session-revoked"
"""Event topic of a termination (`data.key`: the hash)."""


def session_key(session_id: str) -> str:
    """The registry's name for a session id: 128 bits of its SHA-256, in hex."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEntry:
    """Who holds a session, as the registry last heard."""

    replica: str
    """The replica that holds (last served) the session."""
    principal: str
    """The principal the session belongs to."""
    alive: bool
    """Whether that replica's heartbeat is current."""


class RegistryStore(KeyValueStore, MemberStore, PubSub, Protocol):
    """What the registry needs of shared state: holders (members), revocations (key-value) and announcements."""


class SessionRegistry:
    """The cluster's view of handshake-era sessions, over the shared state (`RegistryStore`)."""

    def __init__(self, store: RegistryStore, replica: str, *, revoke_seconds: float = 86400.0) -> None:
        """Build a registry for one replica.

        Args:
            store: The shared state store.
            replica: This replica's id (`cluster.replica_id`, or the host name).
            revoke_seconds: How long a terminated id is remembered (`cluster.session_max_age_seconds`).
        """
        self.store = store
        self.replica = replica
        self.revoke_seconds = revoke_seconds

    def _value(self, principal: str) -> bytes:
        return json.dumps({"r": self.replica, "p": principal}, sort_keys=True).encode()

    async def register(self, session_id: str, principal: str) -> None:
        """This replica holds `session_id` now (a new session, or one restored from its sealed id)."""
        await self.store.put_members(
            SESSIONS_KEY, {session_key(session_id): self._value(principal)}, ttl=LIVENESS_SECONDS
        )

    async def refresh(self, sessions: Mapping[str, str]) -> None:
        """Keep every session this replica holds (id -> principal) alive in the registry, in one call."""
        if sessions:
            members = {session_key(sid): self._value(principal) for sid, principal in sessions.items()}
            await self.store.put_members(SESSIONS_KEY, members, ttl=LIVENESS_SECONDS)

    async def forget(self, session_id: str) -> None:
        """The session ended here (closed, expired): drop its entry."""
        await self.store.remove_members(SESSIONS_KEY, [session_key(session_id)])

    async def revoke(self, session_id: str, principal: str) -> None:
        """The client terminated the session (DELETE): no replica may restore its id again."""
        key = session_key(session_id)
        await self.store.set(f"{REVOKED_PREFIX}{key}", principal.encode(), ttl=self.revoke_seconds)
        await self.store.remove_members(SESSIONS_KEY, [key])
        await self.store.publish(REVOKED_TOPIC, {"key": key, "replica": self.replica})

    async def is_revoked(self, session_id: str) -> bool:
        """Whether the session id was terminated."""
        return await self.store.get(f"{REVOKED_PREFIX}{session_key(session_id)}") is not None

    async def lookup(self, session_id: str) -> SessionEntry | None:
        """Who holds the session, or None when no live entry exists (unknown, ended, or its holder long gone)."""
        raw = await self.store.get_member(SESSIONS_KEY, session_key(session_id))
        if raw is None:
            return None
        value = _json(raw)
        replica = str(value.get("r", ""))
        alive = await self.store.get_member(REPLICAS_KEY, replica) is not None
        return SessionEntry(replica=replica, principal=str(value.get("p", "")), alive=alive)

    async def count(self) -> int:
        """Handshake-era sessions held by live replicas across the cluster."""
        return await self.store.count_members(SESSIONS_KEY)

    async def heartbeat(self, status: Mapping[str, Any]) -> None:
        """This replica is alive; `status` is what `bastion cluster status` shows of it."""
        body = json.dumps({**status, "replica": self.replica, "seen": time.time()}, sort_keys=True).encode()
        await self.store.put_members(REPLICAS_KEY, {self.replica: body}, ttl=HEARTBEAT_LIVENESS_SECONDS)

    async def leave(self) -> None:
        """This replica stops cleanly: drop its heartbeat (its sessions may be restored elsewhere)."""
        await self.store.remove_members(REPLICAS_KEY, [self.replica])

    async def replicas(self) -> dict[str, dict[str, Any]]:
        """Every live replica's last status, by replica id."""
        return {
            replica: _json(raw)
            for replica, raw in sorted((await self.store.list_members(REPLICAS_KEY)).items())
        }

    async def explain(self, session_id: str, principal: str) -> dict[str, str] | None:
        """Why a session id is unknown here, for its own principal only (to anyone else: None, no oracle).

        Returns `{"session": "terminated" | "replica_gone" | "held_elsewhere"}`, or None when nothing is known.
        """
        revoked_by = await self.store.get(f"{REVOKED_PREFIX}{session_key(session_id)}")
        if revoked_by is not None:
            return {"session": "terminated"} if revoked_by == principal.encode() else None
        entry = await self.lookup(session_id)
        if entry is None or entry.principal != principal:
            return None
        return {"session": "held_elsewhere" if entry.alive else "replica_gone"}


def _json(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
