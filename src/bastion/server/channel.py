"""The HTTP side of one handshake-era Streamable HTTP session: which stream each message goes on, SSE event ids,
and the bounded replay buffer behind `Last-Event-ID`.

Rules:
- Every message the session sends goes on exactly one stream (never broadcast): the stream of the POST whose
  request it relates to, else the standalone (GET) stream, number 0.
- Event ids are `<stream>-<seq>`: `seq` is unique within the session and `stream` names the stream, so a GET
  resuming from an id replays only that stream's later events, never another stream's.
- The replay buffer keeps the last `limits.event_buffer` SSE events (and at most `REPLAY_MAX_BYTES`) of all
  streams; older events are gone and a resume cannot return them.
- Standalone messages sent while no GET stream is attached wait in the same buffer and go out when one attaches.
- JSON replies are not events: they are never buffered.
"""

from __future__ import annotations

import collections
import itertools
import logging
from typing import Final

import orjson

from bastion.server.reply import Mode, Outlet, Reply, frame
from bastion.types import JsonDict, RequestId

logger = logging.getLogger("bastion.server")

REPLAY_MAX_BYTES: Final = 4 * 1024 * 1024
"""Bytes of SSE events kept per session for resumption, whatever `limits.event_buffer` allows."""
STANDALONE: Final = 0
"""Stream number of the GET stream."""


def parse_event_id(value: str) -> tuple[int, int] | None:
    """`(stream, seq)` of one of our event ids, or None for anything else."""
    stream, sep, seq = value.partition("-")
    if not sep or not stream.isdigit() or not seq.isdigit() or len(value) > 40:
        return None
    return int(stream), int(seq)


class HttpChannel:
    """`Outbound` of a handshake-era HTTP session, plus the streams its client has open."""

    def __init__(self, *, owner: str, buffer_size: int, name: str = "session") -> None:
        self.owner = owner
        """Principal name the session is bound to: its id is refused with anyone else's credentials."""
        self.name = name
        self._replies: dict[RequestId, Reply] = {}
        self._numbers = itertools.count(1)
        self._seq = 0
        self._buffer: collections.deque[tuple[int, int, bytes]] = collections.deque()
        self._buffer_bytes = 0
        self._buffer_size = buffer_size
        self.standalone: Outlet | None = None
        self._standalone_upto = 0
        self.closed = False

    # -- the session's side (Outbound) ----------------------------------------------------------------------------

    async def send(self, message: JsonDict, related: RequestId | None) -> None:
        """Route one outgoing message to its stream (never blocks on the client)."""
        reply = self._replies.get(related) if related is not None else None
        if reply is None:
            if related is not None and "method" not in message:
                return  # a late response to a request nobody waits for any more
            self._to_standalone(orjson.dumps(message))
            return
        final = "method" not in message and message.get("id") == related
        if final:
            del self._replies[related]  # type: ignore[arg-type]
        reply.add(orjson.dumps(message), final)

    # -- the HTTP side ---------------------------------------------------------------------------------------------

    def open_reply(self, request_ids: list[RequestId], *, batch: bool = False) -> Reply:
        """A reply for a POST carrying these requests (all ids must be free: see `in_flight`)."""
        reply = Reply(
            next(self._numbers),
            len(request_ids),
            batch=batch,
            framer=self._framer,
            name=f"{self.name} POST stream",
        )
        for request_id in request_ids:
            self._replies[request_id] = reply
        if self.closed:
            reply.close()
        return reply

    def in_flight(self, request_id: RequestId) -> bool:
        """True when a request with this id still waits for its response."""
        return request_id in self._replies

    def attach_standalone(self, after: int | None) -> Outlet:
        """A new GET stream: replays buffered standalone events after `after` (None: those never delivered)."""
        if self.standalone is not None:
            self.standalone.drop()
        outlet = Outlet(f"{self.name} GET stream")
        start = self._standalone_upto if after is None else after
        for seq, stream, data in self._buffer:
            if stream == STANDALONE and seq > start:
                outlet.push(data)
                self._standalone_upto = max(self._standalone_upto, seq)
        self.standalone = outlet
        if self.closed:
            outlet.finish()
        return outlet

    def standalone_busy(self) -> bool:
        """True while a GET stream is attached and alive."""
        outlet = self.standalone
        return outlet is not None and not (outlet.dropped or outlet.finished)

    def detach(self, outlet: Outlet) -> None:
        """The writer of `outlet` is done with it."""
        if self.standalone is outlet:
            self.standalone = None

    def resume(self, stream: int, after: int) -> Outlet | None:
        """A GET resuming POST stream `stream` after event `after`; None when it cannot be resumed.

        A live stream moves to the new connection (the old one is dropped); a finished one replays what is
        still buffered and ends. Nothing left to replay of a finished stream means its events were evicted.
        """
        live = next((r for r in self._replies.values() if r.number == stream), None)
        if live is not None and live.mode is not Mode.SSE:
            return None  # never streamed, so no client holds an event id of it
        outlet = Outlet(f"{self.name} resumed stream {stream}")
        replayed = 0
        for seq, number, data in self._buffer:
            if number == stream and seq > after:
                outlet.push(data)
                replayed += 1
        if live is None:
            if replayed == 0:
                return None
            outlet.finish()
            return outlet
        if live.outlet is not None:
            live.outlet.drop()
        live.outlet = outlet
        if live.waiting <= 0 or live.closed:
            outlet.finish()
        return outlet

    def close(self) -> None:
        """The session ended: every waiting POST and open stream stops."""
        self.closed = True
        for reply in set(self._replies.values()):
            reply.close()
        self._replies.clear()
        if self.standalone is not None:
            self.standalone.finish()

    @property
    def last_seq(self) -> int:
        """The newest event sequence number (a priming event id points here)."""
        return self._seq

    # -- events and replay -----------------------------------------------------------------------------------------

    def _framer(self, reply: Reply, data: bytes) -> bytes:
        return self._record(reply.number, data)

    def _record(self, stream: int, data: bytes) -> bytes:
        self._seq += 1
        chunk = frame(data, f"{stream}-{self._seq}")
        self._buffer.append((self._seq, stream, chunk))
        self._buffer_bytes += len(chunk)
        while self._buffer and (
            len(self._buffer) > self._buffer_size or self._buffer_bytes > REPLAY_MAX_BYTES
        ):
            self._buffer_bytes -= len(self._buffer.popleft()[2])
        return chunk

    def _to_standalone(self, data: bytes) -> None:
        chunk = self._record(STANDALONE, data)
        outlet = self.standalone
        if outlet is not None and outlet.push(chunk):
            self._standalone_upto = self._seq
