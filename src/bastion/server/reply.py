"""How one HTTP response carries MCP messages: a JSON body, or an SSE stream fed through a bounded outlet.

Rules:
- A producer (a session's `Outbound`) never waits on a client. `Outlet.push` appends a frame or, when the reader
  has fallen `MAX_QUEUED_FRAMES` / `MAX_QUEUED_BYTES` behind, drops the whole stream (logged): a client that never
  reads its stream is cut off instead of growing our memory.
- A reply starts undecided. If the first thing produced for it is its (last) response, it is sent as
  `application/json` (cheaper, and every client must accept it); anything else first (progress, a log message, a
  server->client request), or `KEEPALIVE_SECONDS` of silence, commits it to `text/event-stream`.
- The SSE writer sends a `:` comment after `KEEPALIVE_SECONDS` of silence so that proxies keep the connection.
- Frames are built once, as bytes, from the JSON the session produced; nothing is parsed again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
from collections.abc import Callable
from typing import Final

from starlette.types import Receive, Send

logger = logging.getLogger("bastion.server")

KEEPALIVE_SECONDS: Final = 15.0
"""Seconds of silence on an SSE stream (or an undecided reply) before a keep-alive comment is sent."""
MAX_QUEUED_FRAMES: Final = 1024
"""Frames queued for one SSE stream whose client is not reading before the stream is dropped."""
MAX_QUEUED_BYTES: Final = 16 * 1024 * 1024
"""Bytes queued for one SSE stream whose client is not reading before the stream is dropped."""
FINISH_TIMEOUT_SECONDS: Final = 1.0
"""How long ending a dropped stream politely may take before the connection is simply abandoned."""

KEEPALIVE_FRAME: Final = b": keep-alive\n\n"
SSE_HEADERS: Final = (
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
)
"""Response headers of every SSE stream (`X-Accel-Buffering: no` stops nginx from holding events back)."""


def frame(data: bytes, event_id: str | None = None, event: bytes = b"message") -> bytes:
    """One SSE event carrying `data` (compact JSON never contains a newline, so one `data:` line suffices)."""
    if event_id is None:
        return b"event: " + event + b"\ndata: " + data + b"\n\n"
    return b"id: " + event_id.encode() + b"\nevent: " + event + b"\ndata: " + data + b"\n\n"


class Outlet:
    """A bounded queue of SSE frames between producers and the one writer of a stream."""

    __slots__ = ("_bytes", "_frames", "_wake", "dropped", "finished", "guard", "name")

    def __init__(self, name: str = "stream", wake: asyncio.Event | None = None) -> None:
        self.name = name
        self._frames: collections.deque[bytes] = collections.deque()
        self._bytes = 0
        self._wake = wake or asyncio.Event()
        self.finished = False
        """No more frames will come; the writer ends the stream once the queue is empty."""
        self.dropped = False
        """The stream ends now, whatever is still queued (overflow, takeover, shutdown)."""
        self.guard: asyncio.Timeout | None = None
        """Set by the writer while it runs, so a drop can interrupt a `send` blocked on a slow socket."""

    def push(self, chunk: bytes) -> bool:
        """Queue one frame; False when the stream is gone (dropped now if the reader fell too far behind)."""
        if self.dropped or self.finished:
            return False
        self._frames.append(chunk)
        self._bytes += len(chunk)
        if len(self._frames) > MAX_QUEUED_FRAMES or self._bytes > MAX_QUEUED_BYTES:
            logger.warning(
                "%s: the client is not reading (%d frames, %d bytes queued); closing the stream",
                self.name,
                len(self._frames),
                self._bytes,
            )
            self.drop()
            return False
        self._wake.set()
        return True

    def finish(self) -> None:
        """End the stream after what is queued."""
        self.finished = True
        self._wake.set()

    def drop(self) -> None:
        """End the stream at once; queued frames are discarded (they stay in any replay buffer)."""
        if self.dropped:
            return
        self.dropped = True
        self._frames.clear()
        self._bytes = 0
        self._wake.set()
        if self.guard is not None:
            self.guard.reschedule(asyncio.get_running_loop().time())

    async def pull(self) -> bytes | None:
        """Everything queued as one chunk, a keep-alive after a quiet period, or None once the stream is over."""
        while True:
            if self.dropped:
                return None
            if self._frames:
                chunk = self._frames.popleft() if len(self._frames) == 1 else b"".join(self._frames)
                self._frames.clear()
                self._bytes = 0
                return chunk
            if self.finished:
                return None
            self._wake.clear()
            timer = asyncio.get_running_loop().call_later(KEEPALIVE_SECONDS, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()
            if not (self._frames or self.finished or self.dropped):
                return KEEPALIVE_FRAME  # woken by the timer: nothing happened for a while


class Mode(enum.Enum):
    """What a reply has become."""

    PENDING = "pending"
    JSON = "json"
    SSE = "sse"


Framer = Callable[["Reply", bytes], bytes]
"""Turns one message's JSON into an SSE frame for a reply (assigning an event id where the transport keeps them)."""


def plain_framer(_reply: Reply, data: bytes) -> bytes:
    """A frame without an event id (2026-07-28 streams are not resumable)."""
    return frame(data)


class Reply:
    """The answer to one POST: its response(s), and whatever the session sent while serving it."""

    __slots__ = (
        "_framer",
        "batch",
        "closed",
        "mode",
        "name",
        "number",
        "outlet",
        "parts",
        "status",
        "waiting",
        "wake",
    )

    def __init__(
        self,
        number: int,
        waiting: int = 1,
        *,
        batch: bool = False,
        framer: Framer = plain_framer,
        name: str = "reply",
    ) -> None:
        self.number = number
        """Stream number (names the stream in event ids)."""
        self.name = name
        self.waiting = waiting
        """Responses still to come (1, or the number of requests in a batch)."""
        self.batch = batch
        """A JSON reply is an array, even of one response."""
        self.mode = Mode.PENDING
        self.parts: list[bytes] = []
        """Response JSON collected while undecided (joined into the JSON body, or flushed as SSE events)."""
        self.status = 200
        """HTTP status of a JSON reply (2026-07-28 maps some error codes to 4xx)."""
        self.wake = asyncio.Event()
        self.outlet: Outlet | None = None
        self.closed = False
        """The session ended before the reply was complete."""
        self._framer = framer

    def add(self, data: bytes, final: bool, status: int = 200) -> None:
        """Record one message for this reply; `final` when it is a response (the last one ends the reply)."""
        if final:
            self.waiting -= 1
        if self.mode is Mode.PENDING:
            if final:
                self.parts.append(data)
                if self.waiting <= 0:
                    self.status = status
                    self.mode = Mode.JSON
                    self.wake.set()
                return
            self.commit_sse()
        if self.outlet is not None:
            self.outlet.push(self._framer(self, data))
        if final and self.waiting <= 0 and self.outlet is not None:
            self.outlet.finish()

    def commit_sse(self) -> None:
        """Turn the reply into an SSE stream; responses collected so far become its first events."""
        if self.mode is not Mode.PENDING:
            return
        self.mode = Mode.SSE
        self.outlet = Outlet(self.name, self.wake)
        parts, self.parts = self.parts, []
        for data in parts:
            self.outlet.push(self._framer(self, data))
        if self.waiting <= 0:
            self.outlet.finish()
        self.wake.set()

    def close(self) -> None:
        """The session is gone: whoever waits on this reply stops waiting."""
        self.closed = True
        if self.outlet is not None:
            self.outlet.finish()
        self.wake.set()

    def json_body(self) -> bytes:
        """The JSON body of a decided reply: one message, or an array for a batch."""
        if not self.batch:
            return self.parts[0]
        return b"[" + b",".join(self.parts) + b"]"

    async def decided(self) -> Mode:
        """Wait until the reply is JSON or SSE (committing to SSE after a quiet `KEEPALIVE_SECONDS`)."""
        if self.mode is not Mode.PENDING or self.closed:
            return self.mode
        # A timer that commits, rather than a timeout around the wait: cheaper, and nothing to cancel.
        timer = asyncio.get_running_loop().call_later(KEEPALIVE_SECONDS, self.commit_sse)
        try:
            while self.mode is Mode.PENDING and not self.closed:
                self.wake.clear()
                await self.wake.wait()
        finally:
            timer.cancel()
        return self.mode


async def send_sse(
    send: Send,
    receive: Receive,
    outlet: Outlet,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    first: bytes = b"",
    on_disconnect: Callable[[], None] | None = None,
    on_keepalive: Callable[[], None] | None = None,
    watch: bool = True,
) -> bool:
    """Answer with an SSE stream fed by `outlet` until it finishes, is dropped, or the client goes away.

    Args:
        watch: Watch `receive` for the client leaving (False when the caller already does).

    Returns:
        True when the stream ended normally (finished), False when it was dropped or the client left.
    """
    await send({"type": "http.response.start", "status": 200, "headers": [*SSE_HEADERS, *(headers or ())]})
    watcher = asyncio.ensure_future(_watch_disconnect(receive, outlet, on_disconnect)) if watch else None
    try:
        return await _pump(send, outlet, first, on_keepalive)
    finally:
        if watcher is not None:
            watcher.cancel()


async def _watch_disconnect(
    receive: Receive, outlet: Outlet, on_disconnect: Callable[[], None] | None
) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    if not (outlet.finished or outlet.dropped) and on_disconnect is not None:
        on_disconnect()
    outlet.drop()


async def _pump(send: Send, outlet: Outlet, first: bytes, on_keepalive: Callable[[], None] | None) -> bool:
    try:
        async with asyncio.timeout(None) as guard:
            outlet.guard = guard
            if first:
                await send({"type": "http.response.body", "body": first, "more_body": True})
            while (chunk := await outlet.pull()) is not None:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if chunk is KEEPALIVE_FRAME and on_keepalive is not None:
                    on_keepalive()
    except TimeoutError:
        pass  # dropped while blocked writing to a client that does not read
    finally:
        outlet.guard = None
    # A slow reader's socket may never drain: end politely if we can, else abandon the connection.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(FINISH_TIMEOUT_SECONDS):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    return not outlet.dropped
