"""The notice bus and observer fan-out: every finished exchange and every notable event reaches its observers.

Rules:
- Exchange observers run in the order they were added (audit first, then metrics): each sees every exchange,
  rejections included. The first failure propagates (strict audit withholds the reply), but only after every
  observer ran, so a refused reply still releases rate-limit slots and is still counted.
- A notice goes to every exchange observer with an `on_notice` hook, then to the other notice observers; a
  failing observer is logged, never raised: a notice never fails a call or a state change.
- `emit_soon` (from synchronous code) is tracked, and `drain` awaits what is still in flight at close.
"""

from __future__ import annotations

import logging
from typing import Any

from bastion.core.ports import HostedSession
from bastion.core.tasks import BackgroundTasks
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.notice import Notice, NoticeKind, NoticeObserver
from bastion.pipeline.stage import ExchangeObserver

logger = logging.getLogger("bastion.gateway")


class NoticeBus:
    """Exchange observers and notice observers, and the one way to reach them."""

    def __init__(self) -> None:
        self.observers: list[ExchangeObserver] = []
        """Exchange observers in the order they run."""
        self.notice_observers: list[NoticeObserver] = []
        """Notice observers besides `observers` that have an `on_notice` hook (the dashboard feed, alerts)."""
        self._tasks = BackgroundTasks()

    async def observe(self, exchange: Exchange) -> None:
        """Hand a finished exchange to every observer; the first failure is raised after all of them ran."""
        failure: Exception | None = None
        for observer in self.observers:
            try:
                await observer.on_exchange(exchange)
            except Exception as exc:  # noqa: BLE001 - observer boundary: the others must still see the exchange
                failure = failure or exc
        if failure is not None:
            raise failure

    async def emit(self, notice: Notice) -> None:
        """Hand a notable event to every notice observer; a failing observer is logged, never raised."""
        targets = [o for o in self.observers if isinstance(o, NoticeObserver)] + self.notice_observers
        for observer in targets:
            try:
                await observer.on_notice(notice)
            except Exception:
                logger.exception("notice observer failed on %s", notice.kind)

    def emit_soon(self, notice: Notice) -> None:
        """`emit()` from synchronous code (a callback, a signal handler on the loop): started now, awaited at
        close."""
        self._tasks.spawn(self.emit(notice))

    async def drain(self) -> None:
        """Wait for every notice still being delivered."""
        await self._tasks.drain()


def session_notice(kind: NoticeKind, session: HostedSession, **detail: Any) -> Notice:
    """A notice about a client session, with its principal and client facts filled in."""
    info = session.info
    return Notice(
        kind=kind,
        session_id=info.session_id,
        principal=info.principal.name,
        roles=tuple(sorted(info.principal.roles)),
        transport=info.transport,
        remote=info.remote,
        detail={
            "client": info.client_name,
            "clientVersion": info.client_version,
            "protocol": info.protocol_version,
            **detail,
        },
    )
