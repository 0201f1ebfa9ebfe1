"""The session registry: which client sessions live on this replica, their caps, sealed ids and idle expiry.

Rules:
- A stateful session counts against `limits.max_sessions` and its principal's fair share from the moment it
  opens; a stateless one (one 2026-07-28 HTTP request) is never registered.
- With `cluster.session_secret`, a session's id becomes its sealed state once the handshake is done
  (`core/sealing.py`), so any replica can rebuild it; a sealed id opens only for the credential that sealed it,
  never once the cluster says it was terminated, and not when the registry cannot say (fail closed).
- Idle sessions expire after `limits.session_idle_seconds`, except stdio ones (the client holds the pipe) and
  busy ones (a long tool call is not idleness).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from bastion.core.config import GatewayConfig
from bastion.core.fair_limits import FairLimits
from bastion.core.ports import HostedSession, Revocations
from bastion.core.sealing import SealedState, SessionSealer
from bastion.errors import RateLimited
from bastion.types import Principal, binding_of

logger = logging.getLogger("bastion.gateway")

S = TypeVar("S", bound=HostedSession)


class SessionTable(Generic[S]):
    """Live sessions by id, with the limits, sealing and expiry that apply to them."""

    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        self.sessions: dict[str, S] = {}
        secret = config.cluster.session_secret
        self.sealer = (
            SessionSealer(secret.get_secret_value(), max_age_seconds=config.cluster.session_max_age_seconds)
            if secret is not None
            else None
        )
        self.fair = FairLimits(config.limits)
        """Per-principal session caps and session-opening rates (per principal, per client address)."""
        self.listeners: list[Callable[[str, Any], Any]] = []
        """Told (`start`, `restore`, `end`) about every stateful session."""
        self.revocations: Revocations | None = None
        """The cluster's terminated ids (set by the core from the cluster's contribution)."""

    @staticmethod
    def new_id() -> str:
        """A fresh 192-bit random session id."""
        return secrets.token_urlsafe(24)

    def admit(self, principal: Principal, remote: str) -> None:
        """Raise `RateLimited` when one more stateful session would pass a limit."""
        if len(self.sessions) >= self._config.limits.max_sessions:
            raise RateLimited("too many sessions", data={"retryAfter": 5})
        self.fair.admit(principal.name, remote)

    def add(self, session: S) -> None:
        self.sessions[session.session_id] = session
        self.fair.opened(session.principal_name)

    def get(self, session_id: str) -> S | None:
        session = self.sessions.get(session_id)
        return None if session is None or session.closed else session

    def remove(self, session: S) -> None:
        if self.sessions.pop(session.session_id, None) is not None:
            self.fair.closed(session.principal_name)

    def tell(self, event: str, session: S) -> None:
        for listener in self.listeners:
            listener(event, session)

    async def unseal(self, session_id: str, principal: Principal) -> SealedState | None:
        """The sealed state of an id another replica created, when `principal` may reopen it here."""
        if self.sealer is None or (state := self.sealer.open(session_id)) is None:
            return None
        if await self._revoked(session_id):
            return None
        if (
            state.credential != binding_of(principal)
            or len(self.sessions) >= self._config.limits.max_sessions
        ):
            return None
        return state

    async def _revoked(self, session_id: str) -> bool:
        """Whether a sealed id was terminated (DELETE) on some replica; an unreachable registry counts as yes."""
        if self.revocations is None:
            return False
        try:
            return await self.revocations.is_revoked(session_id)
        except Exception:
            logger.exception("session registry unavailable; not restoring session %s", session_id[:12])
            return True

    def seal(self, session: S) -> None:
        """With a cluster secret, a session that finished its handshake is re-keyed by its sealed state."""
        if self.sealer is None or session.stateless:
            return
        info = session.info
        sealed = self.sealer.seal(
            SealedState(
                principal=info.principal.name,
                roles=tuple(sorted(info.principal.roles)),
                method=info.principal.method,
                protocol_version=info.protocol_version,
                client_capabilities=info.client_capabilities,
                client_name=info.client_name,
                client_version=info.client_version,
                created=time.time(),
                credential=binding_of(info.principal),
            )
        )
        self.sessions.pop(session.session_id, None)
        session.session_id = info.session_id = sealed
        self.sessions[sealed] = session

    async def reap_idle(self) -> None:
        """Close idle sessions, forever (cancelled at close)."""
        idle = self._config.limits.session_idle_seconds
        while True:
            await asyncio.sleep(min(60.0, idle / 2))
            now = time.monotonic()
            expired = [
                s
                for s in self.sessions.values()
                if now - s.last_active > idle and s.info.transport != "stdio" and not s.busy
            ]
            for session in expired:
                logger.info("session %s expired after %.0fs idle", session.session_id[:8], idle)
                await session.aclose()
