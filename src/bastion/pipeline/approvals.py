"""Calls waiting for a human: the `ask` action's queue when the client cannot be asked through elicitation.

The dashboard (and the admin API) list pending approvals and resolve them; the waiting call resumes with the answer.
A pending approval that nobody answers within its timeout is a denial (fail closed).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

DEFAULT_TIMEOUT_SECONDS: Final = 300.0
"""Seconds a call waits for a human before it is denied."""


@dataclass(slots=True, kw_only=True)
class PendingApproval:
    """A call held until a human approves or denies it."""

    id: str
    """Opaque id used by the dashboard and the admin API."""
    question: str
    """What the human is asked (no secrets)."""
    principal: str
    """Who made the call."""
    server: str | None
    target: str | None
    method: str
    session_id: str
    created: float = field(default_factory=time.time)
    future: asyncio.Future[bool] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "principal": self.principal,
            "server": self.server,
            "target": self.target,
            "method": self.method,
            "session": self.session_id[:8],
            "created": self.created,
        }


class ApprovalQueue:
    """Pending approvals in this process (the scale-out work moves this behind the shared state store)."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self._pending: dict[str, PendingApproval] = {}
        self.listeners: list[Callable[[str, PendingApproval], Any]] = []

    def pending(self) -> list[PendingApproval]:
        """Every approval still waiting, oldest first."""
        return sorted(self._pending.values(), key=lambda p: p.created)

    async def ask(
        self,
        *,
        question: str,
        principal: str,
        server: str | None,
        target: str | None,
        method: str,
        session_id: str,
    ) -> bool:
        """Hold the caller until a human answers; False on denial or timeout."""
        item = PendingApproval(
            id=secrets.token_urlsafe(12),
            question=question,
            principal=principal,
            server=server,
            target=target,
            method=method,
            session_id=session_id,
        )
        item.future = asyncio.get_running_loop().create_future()
        self._pending[item.id] = item
        self._emit("pending", item)
        try:
            return await asyncio.wait_for(asyncio.shield(item.future), self.timeout)
        except TimeoutError:
            return False
        finally:
            self._pending.pop(item.id, None)

    def resolve(self, approval_id: str, approved: bool) -> bool:
        """Answer a pending approval; False when it is unknown or already answered."""
        item = self._pending.get(approval_id)
        if item is None or item.future is None or item.future.done():
            return False
        item.future.set_result(approved)
        self._emit("approved" if approved else "denied", item)
        return True

    def _emit(self, event: str, item: PendingApproval) -> None:
        for listener in self.listeners:
            listener(event, item)
