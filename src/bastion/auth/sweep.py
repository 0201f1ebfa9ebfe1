"""`CredentialSweeper`: ends every session whose credential stopped being valid, on every replica.

A session is bound to the credential that opened it (`principal.binding_of`), and every request re-authenticates,
so a revoked key can open nothing new; this sweep also ends what it already opened: sessions of an API key that was
revoked or expired (read from the shared state store, so a revocation made by the CLI or by another replica is
seen here too) and sessions of a JWT whose `exp` passed.

Rules:
- Every `SWEEP_SECONDS` each distinct API key among live sessions is looked up once; a key that is gone, revoked
  or expired ends all its sessions. A session whose credential's `expires_at` passed ends without a lookup.
- A store that cannot be read ends nothing and is retried next sweep (revocation lags; sessions are not dropped
  because Redis blinked). New requests still authenticate against the store and fail closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from bastion.auth.apikeys import ApiKeyStore

if TYPE_CHECKING:
    from bastion.core.ports import HostedSession, Sessions

logger = logging.getLogger("bastion.auth")

SWEEP_SECONDS: Final = 0.5
"""Seconds between sweeps: a revoked key's sessions end within this (plus one store read) on every replica."""
_KEY_PREFIX: Final = "api_key:"


class CredentialSweeper:
    """Closes sessions of revoked or expired credentials. Start with `start()`, stop with `aclose()`."""

    def __init__(
        self, gateway: Sessions, keys: ApiKeyStore | None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._gateway = gateway
        self._keys = keys
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="credential-sweeper")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except Exception:  # the store failed: keep the sessions, try again next sweep
                logger.exception("credential sweep failed; retrying")

    async def sweep(self) -> int:
        """One pass; returns how many sessions it ended."""
        now = self._clock()
        sessions = [s for s in self._gateway.sessions.values() if not s.closed]
        ended: list[HostedSession] = []
        key_ids = {
            credential[len(_KEY_PREFIX) :]
            for s in sessions
            if (credential := str(s.info.principal.credential)).startswith(_KEY_PREFIX)
        }
        dead_keys = set()
        if self._keys is not None:
            for key_id in key_ids:
                if not await self._keys.usable(key_id):
                    dead_keys.add(f"{_KEY_PREFIX}{key_id}")
        for session in sessions:
            principal = session.info.principal
            expired = principal.expires_at is not None and principal.expires_at <= now
            if expired or principal.credential in dead_keys:
                ended.append(session)
        for session in ended:
            logger.info("session %s ended: its credential was revoked or expired", session.session_id[:8])
            await session.aclose()
        return len(ended)
