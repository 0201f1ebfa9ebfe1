"""What an upstream connection keeps per request in flight, and the few pure rules about them.

`Pending` is one request waiting for its answer; `expire` is its timer (it also interrupts a send that blocks, so a
request is bounded whatever the upstream does); `transport_failure` tells an error a transport made up (the
exchange failed) from the server's own error, because only the former counts against the circuit breaker.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from bastion.errors import UpstreamTimeout
from bastion.types import JsonDict, RequestId

FAILURE_CODES: Final = frozenset({-31010, -31011})
"""Codes of the errors a transport makes up for a request whose exchange failed (HTTP down, 5xx, timeout)."""


class State(enum.StrEnum):
    CONNECTING = "connecting"
    READY = "ready"
    DOWN = "down"
    CLOSED = "closed"


class Owner(Protocol):
    """The downstream side an upstream request belongs to (a client session)."""

    session_id: str

    @property
    def principal_name(self) -> str:
        """The principal the session belongs to (association rules)."""
        ...

    async def relay_request(
        self, message: JsonDict, related: RequestId | None, *, server: str = ""
    ) -> JsonDict:
        """Forward a server->client request from upstream `server` to the client; returns the client's response."""
        ...

    async def relay_notification(self, message: JsonDict, related: RequestId | None) -> None:
        """Forward a notification to the client, on the stream of `related` when given."""
        ...


@dataclass(slots=True)
class Pending:
    """An upstream request in flight."""

    future: asyncio.Future[JsonDict]
    owner: Owner | None
    downstream_id: RequestId | None
    progress_token: Any = None
    started: float = field(default_factory=time.monotonic)
    sender: asyncio.Task[Any] | None = None
    """The caller's task while it is still sending the request (the timer interrupts a send that blocks)."""
    send_expired: bool = False


def expire(pending: Pending, server: str, method: str, timeout: float) -> None:
    if not pending.future.done():
        pending.future.set_exception(
            UpstreamTimeout(
                f"server {server} did not answer {method} in {timeout:g}s", data={"server": server}
            )
        )
    if pending.sender is not None:
        pending.send_expired = True
        pending.sender.cancel()


def transport_failure(reply: JsonDict, server: str) -> bool:
    """True for the error a transport made up because the exchange itself failed (not the server's own error)."""
    error = reply.get("error")
    if not isinstance(error, dict) or error.get("code") not in FAILURE_CODES:
        return False
    data = error.get("data")
    return isinstance(data, dict) and data.get("server") == server
