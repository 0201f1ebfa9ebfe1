"""The HTTP/1.1 protocol `bastion serve` gives uvicorn: httptools, plus a deadline on request headers (slowloris).

uvicorn bounds idle keep-alive connections but not a request whose headers trickle in, or a connection that
never sends any: enough of them exhaust file descriptors while costing the attacker nothing. Here every request's
headers must be complete within `header_timeout` seconds of the connection opening (or of the request's first
byte on a kept-alive connection); otherwise the connection is closed, logged and reported. Bodies have their own
deadline (`server.wire.BODY_TIMEOUT_SECONDS`), so between the two a slow client holds a connection for a bounded
time only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger("bastion.server")

TimeoutHook = Callable[[str], None]
"""Called (on the loop) with the client address of a connection cut off for slow headers."""


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that closes connections whose request headers do not arrive in time."""

    header_timeout: float = 10.0
    """Seconds; set on the subclass `with_header_deadline` makes."""
    on_timeout: TimeoutHook | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        remote = self.client[0] if self.client else ""
        logger.info(
            "closed a connection whose request headers took over %gs (client %s)", self.header_timeout, remote
        )
        self.transport.close()
        if self.on_timeout is not None:
            self.on_timeout(str(remote))


def with_header_deadline(
    seconds: float, on_timeout: TimeoutHook | None = None
) -> type[HeaderDeadlineProtocol]:
    """A protocol class for `uvicorn.run(http=...)` with this header deadline and reporting hook."""
    return type(
        "BastionHttpProtocol",
        (HeaderDeadlineProtocol,),
        {"header_timeout": seconds, "on_timeout": staticmethod(on_timeout) if on_timeout else None},
    )
