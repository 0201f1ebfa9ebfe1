"""Calls waiting for a human: the `ask` action's queue when the client cannot be asked through elicitation.

The dashboard (and the admin API) list pending approvals and resolve them; the waiting call resumes with the answer.
With a shared state store (Redis) the queue spans replicas: a call held on one replica can be approved through
another. A pending approval nobody answers within its timeout is a denial (fail closed).

Rules:
- A pending approval is a record in the `approvals` namespace; its answer is the key `approval-answer:<id>`.
- The replica holding the call resolves it at once when the answer is given locally, and otherwise polls the
  answer key every `POLL_SECONDS` (bounded: the wait ends at the timeout).
- An answer is written only for an approval that is still pending (`only_if_absent`): the first answer wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from bastion.state.base import KeyValueStore, RecordStore

DEFAULT_TIMEOUT_SECONDS: Final = 300.0
"""Seconds a call waits for a human before it is denied."""
POLL_SECONDS: Final = 0.25
"""How often a replica checks the shared store for an answer given on another replica."""
_NAMESPACE: Final = "approvals"


class ApprovalStore(KeyValueStore, RecordStore, Protocol):
    """What shared approvals need of shared state: pending questions (records) and answers (key-value)."""


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

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> PendingApproval:
        return cls(
            id=record["id"],
            question=record["question"],
            principal=record["principal"],
            server=record.get("server"),
            target=record.get("target"),
            method=record["method"],
            session_id=record.get("session", ""),
            created=float(record["created"]),
        )


class ApprovalQueue:
    """Pending approvals, in this process or shared through a `StateStore`."""

    def __init__(
        self, store: ApprovalStore | None = None, *, timeout: float = DEFAULT_TIMEOUT_SECONDS
    ) -> None:
        self.store = store
        self.timeout = timeout
        self._local: dict[str, PendingApproval] = {}
        self._waiters: dict[str, asyncio.Future[bool]] = {}
        self.listeners: list[Callable[[str, PendingApproval], Any]] = []

    async def pending(self) -> list[PendingApproval]:
        """Every approval still waiting (on any replica when the store is shared), oldest first."""
        if self.store is None:
            items = list(self._local.values())
        else:
            now = time.time()
            items = [PendingApproval.from_dict(r) for _id, r in await self.store.list_records(_NAMESPACE)]
            items = [i for i in items if now - i.created < self.timeout]
        return sorted(items, key=lambda p: p.created)

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
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._local[item.id] = item
        self._waiters[item.id] = future
        if self.store is not None:
            await self.store.put_record(_NAMESPACE, item.id, item.to_dict() | {"session": session_id})
        self._emit("pending", item)
        try:
            async with asyncio.timeout(self.timeout):
                if self.store is None:
                    return await future
                while not future.done():
                    answer = await self.store.get(f"approval-answer:{item.id}")
                    if answer is not None:
                        return answer == b"1"
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_SECONDS):
                            await asyncio.shield(future)
                return future.result()
        except TimeoutError:
            return False
        finally:
            self._local.pop(item.id, None)
            self._waiters.pop(item.id, None)
            if self.store is not None:
                await self.store.delete_record(_NAMESPACE, item.id)

    async def resolve(self, approval_id: str, approved: bool) -> bool:
        """Answer a pending approval; False when it is unknown or already answered."""
        item = self._local.get(approval_id)
        if self.store is not None:
            record = await self.store.get_record(_NAMESPACE, approval_id)
            if record is None:
                return False
            first = await self.store.set(
                f"approval-answer:{approval_id}",
                b"1" if approved else b"0",
                ttl=self.timeout,
                only_if_absent=True,
            )
            if not first:
                return False
            item = item or PendingApproval.from_dict(record)
        elif item is None:
            return False
        waiter = self._waiters.get(approval_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(approved)
        elif self.store is None:
            return False
        self._emit("approved" if approved else "denied", item)
        return True

    def _emit(self, event: str, item: PendingApproval) -> None:
        for listener in self.listeners:
            listener(event, item)
