"""`AuditRecorder`: observes every exchange and notice and commits them to every sink, in groups.

Rules:
- Strict (the default): `on_exchange` returns only after the event is durable in every sink, so the reply is
  released after its record exists. A sink that is down, a full queue or a commit slower than
  `commit_timeout_seconds` raises `AuditUnavailable`, and the session answers the call with that error.
- Relaxed: events are queued and the call goes on; an event lost for good (full queue, a sink down for longer
  than its backlog lasts, unwritten at close) is counted in `dropped` and logged.
- Group commit: one writer task takes everything queued (up to `batch_size`) into one transaction per sink, so
  concurrent calls share a commit and an fsync; strict callers wait on their batch's outcome.
- A sink that fails keeps the events it missed (bounded by `queue_size`) and retries them first, with backoff,
  so its chain stays gap-free across an outage; while it backs off, strict calls are refused at once.
- Every `checkpoint_every` events, `checkpoint_seconds` after the first event it does not cover yet, and at
  close, a checkpoint is taken per sink: signed into the sink (with a key) and its head into every witness.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

from bastion.audit.chain import Anchor, ChainHead
from bastion.audit.config import AuditConfig
from bastion.audit.event import AuditEvent, event_from_notice, exchange_content
from bastion.audit.signing import SigningKey
from bastion.audit.sinks import AuditReader, AuditSink, EncodedEvent, Sink, build_sink
from bastion.audit.witness import Witness
from bastion.core.config import default_replica
from bastion.errors import AuditUnavailable
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.notice import Notice

logger = logging.getLogger("bastion.audit")

RETRY_MIN_SECONDS: Final = 0.05
"""First wait before a failed sink is tried again; doubles up to `RETRY_MAX_SECONDS`."""
RETRY_MAX_SECONDS: Final = 5.0
PRUNE_EVERY_SECONDS: Final = 3600.0
"""How often retention pruning runs (it also runs once at open)."""


def _describe(exc: BaseException) -> str:
    # Type and errno only: driver messages may quote connection strings.
    errno = getattr(exc, "errno", None)
    return f"{type(exc).__name__}{f' (errno {errno})' if errno else ''}"


@dataclass(slots=True)
class _Item:
    encoded: EncodedEvent
    future: asyncio.Future[bool] | None


class _SinkWriter:
    """One sink's share of the writer: its backlog of missed events, its backoff, its checkpoints."""

    def __init__(
        self,
        sink: AuditSink,
        *,
        limit: int,
        batch_size: int,
        key: SigningKey | None,
        every: int,
        seconds: float = 60.0,
        witnesses: Sequence[Witness] = (),
        strict: bool = True,
    ) -> None:
        self.sink = sink
        self._strict = strict
        self.backlog: collections.deque[EncodedEvent] = collections.deque()
        self.dropped = 0
        self.healthy = True
        self.head: ChainHead | None = None
        self._limit = limit
        self._batch = batch_size
        self._key = key
        self._every = every
        self._seconds = seconds
        self._witnesses = tuple(witnesses)
        self._pending_since: float | None = None
        """Monotonic time the oldest event not covered by a checkpoint was written (None: all covered)."""
        self._opened = False
        self._retry_at = 0.0
        self._delay = RETRY_MIN_SECONDS
        self._checkpointed = 0
        self.witness_failures = 0
        """Checkpoints a witness did not take (logged; strict retries them, relaxed goes on without)."""

    def retry_in(self, now: float) -> float | None:
        return max(0.0, self._retry_at - now) if self.backlog else None

    def _keep(self, events: Sequence[EncodedEvent]) -> None:
        # Like the queue, a full backlog turns new events away: what is kept is the start of the outage.
        room = max(0, self._limit - len(self.backlog))
        self.backlog.extend(events[:room])
        self.dropped += max(0, len(events) - room)

    async def write(self, replica: str, batch: Sequence[EncodedEvent], *, force: bool = False) -> bool:
        """Write the backlog, then `batch`; True when all of it is durable."""
        now = time.monotonic()
        if not force and now < self._retry_at:
            self._keep(batch)
            return False
        self._keep(batch)
        try:
            if not self._opened:
                await self.sink.open()
                self._opened = True
            while self.backlog:
                chunk = [self.backlog[i] for i in range(min(self._batch, len(self.backlog)))]
                head = await self.sink.write(replica, chunk)
                for _ in chunk:
                    self.backlog.popleft()
                await self._checkpoint(head, written=len(chunk))
        except Exception as exc:  # noqa: BLE001 - sink boundary: any driver or OS failure means "not durable"
            if self.healthy:
                logger.error(
                    "audit sink %s failed: %s; events are kept for a retry", self.sink.name, _describe(exc)
                )
            self.healthy = False
            self._retry_at = now + self._delay
            self._delay = min(RETRY_MAX_SECONDS, self._delay * 2)
            return False
        if not self.healthy:
            logger.warning("audit sink %s is back", self.sink.name)
        self.healthy, self._delay, self._retry_at = True, RETRY_MIN_SECONDS, 0.0
        return True

    def checkpoint_in(self, now: float) -> float | None:
        """Seconds until a timed checkpoint is due, or None when every written event is covered."""
        if self._pending_since is None or (self._key is None and not self._witnesses):
            return None
        return max(0.0, self._pending_since + self._seconds - now)

    async def checkpoint_if_due(self, now: float) -> None:
        """Write the timed checkpoint once `checkpoint_seconds` passed since the first uncovered event."""
        wait = self.checkpoint_in(now)
        if wait is not None and wait <= 0 and self.head is not None:
            await self._checkpoint(self.head, written=0, final=True)

    async def _checkpoint(self, head: ChainHead, *, written: int, final: bool = False) -> None:
        previous = self.head.seq if self.head is not None else head.seq - written
        self.head = head
        if (self._key is None and not self._witnesses) or head.seq <= self._checkpointed:
            return
        if self._pending_since is None:
            self._pending_since = time.monotonic()
        if final or head.seq // self._every > previous // self._every:
            anchor = Anchor(
                replica=head.replica, kind="checkpoint", seq=head.seq, hash=head.hash, time=time.time()
            )
            if self._key is not None:
                anchor = self._key.sign(anchor)
            # Witnesses first: then a sink never holds a checkpoint its witness lacks (see witness.py).
            missed = False
            for witness in self._witnesses:
                try:
                    await witness.record(self.sink.name, anchor)
                except Exception as exc:  # noqa: BLE001 - witness boundary: events are durable, next checkpoint retries
                    missed = True
                    logger.error(
                        "audit witness %s: head of %s failed: %s",
                        witness.name,
                        self.sink.name,
                        _describe(exc),
                    )
            if missed:
                self.witness_failures += 1
                if self._strict:
                    # strict: no checkpoint ahead of a witness; this one stays due and is tried again (the
                    # timer, the next batch, or close). relaxed: the sink's checkpoint is written anyway.
                    return
            if self._key is not None:
                try:
                    await self.sink.write_anchor(anchor)
                except Exception as exc:  # noqa: BLE001 - sink boundary: events are durable, a later checkpoint covers them
                    logger.warning("audit sink %s: checkpoint failed: %s", self.sink.name, _describe(exc))
                    return
            self._checkpointed = head.seq
            self._pending_since = None

    async def close(self) -> None:
        self.dropped += len(self.backlog)
        if self.backlog:
            logger.error("audit sink %s closed with %d events unwritten", self.sink.name, len(self.backlog))
        self.backlog.clear()
        with contextlib.suppress(Exception):
            if self.head is not None and self._opened:
                await self._checkpoint(self.head, written=0, final=True)
        with contextlib.suppress(Exception):
            await self.sink.aclose()


class AuditRecorder:
    """The audit observer: `on_exchange` and `on_notice`, strict or relaxed, over one or more sinks."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        *,
        replica: str | None = None,
        mode: Literal["strict", "relaxed"] = "strict",
        max_argument_bytes: int = 4096,
        include_results: bool = False,
        max_result_bytes: int = 4096,
        queue_size: int = 10_000,
        batch_size: int = 256,
        commit_timeout_seconds: float = 5.0,
        key: SigningKey | None = None,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
        witnesses: Sequence[Witness] = (),
        retention_days: float | None = None,
    ) -> None:
        if not sinks:
            raise ValueError("an audit recorder needs at least one sink")
        self.replica = replica or default_replica()
        self.strict = mode == "strict"
        self.key = key
        self.dropped = 0
        """Events turned away at the queue (full, or the recorder closed); see `lost` for every lost event."""
        self.written = 0
        """Events durable in every sink."""
        self.commits = 0
        """Batches committed (`written / commits` is the group-commit factor)."""
        self._readers: list[AuditReader] = list(sinks)
        """The same sinks, seen from the reading side (the dashboard asks the first)."""
        self._writers = [
            _SinkWriter(
                s,
                limit=queue_size,
                batch_size=batch_size,
                key=key,
                every=checkpoint_every,
                seconds=checkpoint_seconds,
                witnesses=witnesses,
                strict=self.strict,
            )
            for s in sinks
        ]
        self._max_args = max_argument_bytes
        self._include_results = include_results
        self._max_result = max_result_bytes
        self._queue: collections.deque[_Item] = collections.deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._timeout = commit_timeout_seconds
        self._retention = retention_days
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pruner: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    def from_config(
        cls,
        config: AuditConfig,
        *,
        replica: str | None = None,
        key: SigningKey | None = None,
        witnesses: Sequence[Witness] = (),
    ) -> AuditRecorder:
        """A recorder with the configured sinks (not opened yet).

        Args:
            config: The `audit:` section.
            replica: The chain id.
            key: Signs checkpoints and prune anchors (`keys.audit_key` finds the one in force).
            witnesses: Where checkpoint heads also go (`witness.build_witnesses`).
        """
        return cls(
            [build_sink(s) for s in config.sinks],
            replica=replica,
            mode=config.mode,
            max_argument_bytes=config.max_argument_bytes,
            include_results=config.include_results,
            max_result_bytes=config.max_result_bytes,
            queue_size=config.queue_size,
            batch_size=config.batch_size,
            commit_timeout_seconds=config.commit_timeout_seconds,
            key=key,
            checkpoint_every=config.checkpoint_every,
            checkpoint_seconds=config.checkpoint_seconds,
            witnesses=witnesses,
            retention_days=config.retention_days,
        )

    # -- what other components read ----------------------------------------------------------------------------

    @property
    def reader(self) -> AuditReader:
        """The sink that answers queries (the first configured)."""
        return self._readers[0]

    @property
    def sinks(self) -> list[AuditSink]:
        return [w.sink for w in self._writers]

    @property
    def queue_depth(self) -> int:
        """Events waiting for a commit, plus the largest backlog of a sink that is down."""
        return len(self._queue) + max(len(w.backlog) for w in self._writers)

    @property
    def healthy(self) -> bool:
        """False while any sink is failing."""
        return all(w.healthy for w in self._writers)

    @property
    def witness_failures(self) -> int:
        """Checkpoint heads a witness did not take, over every sink (each is also logged)."""
        return sum(w.witness_failures for w in self._writers)

    @property
    def lost(self) -> int:
        """Every event lost for good: queue overflow plus per-sink backlog overflow."""
        return self.dropped + sum(w.dropped for w in self._writers)

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Open every sink (a failure is logged and retried, not fatal), prune by retention, start the writer."""
        for writer in self._writers:
            await writer.write(self.replica, [], force=True)
        if self._retention is not None and self._pruner is None:
            await self.prune(time.time() - self._retention * 86400)
            self._pruner = asyncio.create_task(self._prune_forever())
        self._start()

    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run())

    async def flush(self) -> None:
        """Wait until everything queued so far was attempted."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(EncodedEvent(b"", ()), future))  # a marker, never written
        self._start()
        self._wake.set()
        await future

    async def aclose(self) -> None:
        """Flush, write final checkpoints, close sinks. Whatever could not be written is counted as lost.

        Each step is bounded by `commit_timeout_seconds`, so a hung store cannot hold up shutdown.
        """
        if self._closed:
            return
        if self._task is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeout):
                    await self.flush()
        self._closed = True
        for task in (self._task, self._pruner):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for writer in self._writers:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timeout):
                    if writer.backlog:
                        await writer.write(self.replica, [], force=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timeout):
                    await writer.close()
        for item in self._queue:
            self._settle(item, False)
        self._queue.clear()

    # -- observers ---------------------------------------------------------------------------------------------

    async def on_exchange(self, exchange: Exchange) -> None:
        """Record a finished exchange; in strict mode, return only once it is durable."""
        content = exchange_content(
            exchange,
            max_argument_bytes=self._max_args,
            include_results=self._include_results,
            max_result_bytes=self._max_result,
        )
        await self._record(EncodedEvent.of_content(content), wait=self.strict)

    async def on_notice(self, notice: Notice) -> None:
        """Record a notable event; never raises (a notice never fails a call or a state change)."""
        try:
            await self.record(event_from_notice(notice), wait=self.strict)
        except AuditUnavailable:
            logger.warning("audit could not record a %s notice in time", notice.kind)

    async def record(self, event: AuditEvent, *, wait: bool) -> None:
        """Queue one event; with `wait`, return when it is durable or raise `AuditUnavailable`."""
        await self._record(EncodedEvent.of(event), wait=wait)

    async def _record(self, encoded: EncodedEvent, *, wait: bool) -> None:
        if self._closed or len(self._queue) >= self._queue_size:
            self.dropped += 1
            if wait:
                raise AuditUnavailable("the audit trail is unavailable", data={"audit": "queue_full"})
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.error("audit queue full or closed: %d events dropped so far", self.dropped)
            return
        future = asyncio.get_running_loop().create_future() if wait else None
        self._queue.append(_Item(encoded, future))
        self._start()
        self._wake.set()
        if future is None:
            return
        try:
            async with asyncio.timeout(self._timeout):
                # Cancelling the future on a timeout only stops the wait: the event is still committed.
                durable = await future
        except TimeoutError:
            raise AuditUnavailable("the audit trail is unavailable", data={"audit": "timeout"}) from None
        if not durable:
            raise AuditUnavailable("the audit trail is unavailable", data={"audit": "store_down"})

    # -- the writer --------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                now = time.monotonic()
                waits = [
                    w
                    for x in self._writers
                    for w in (x.retry_in(now), x.checkpoint_in(now) if x.healthy else None)
                    if w is not None
                ]
                if not waits:
                    await self._wake.wait()
                else:  # a retry or a timed checkpoint is due later: wake up for it too
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(waits)):
                            await self._wake.wait()
            now = time.monotonic()
            for writer in self._writers:
                if writer.healthy:
                    await writer.checkpoint_if_due(now)
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            try:
                await self._commit(batch)
            except Exception:  # the writer must outlive any bug in one batch: fail that batch, go on
                logger.exception("audit writer failed on a batch")
                for item in batch:
                    self._settle(item, False)

    async def _commit(self, batch: list[_Item]) -> None:
        events = [i.encoded for i in batch if i.encoded.content]
        if len(self._writers) == 1:  # the common case, without a task per sink
            results = [await self._writers[0].write(self.replica, events)]
        else:
            results = await asyncio.gather(*(w.write(self.replica, events) for w in self._writers))
        durable = all(results)
        if durable and events:
            self.written += len(events)
            self.commits += 1
        for item in batch:
            self._settle(item, durable)

    @staticmethod
    def _settle(item: _Item, durable: bool) -> None:
        if item.future is not None and not item.future.done():
            item.future.set_result(durable)

    async def _prune_forever(self) -> None:
        while self._retention is not None:
            await asyncio.sleep(PRUNE_EVERY_SECONDS)
            await self.prune(time.time() - self._retention * 86400)

    async def prune(self, before: float) -> list[Anchor]:
        """Prune every sink up to `before` (epoch seconds); failures are logged."""
        anchors: list[Anchor] = []
        for writer in self._writers:
            try:
                anchors += await writer.sink.prune(before, self.key)
            except Exception as exc:  # noqa: BLE001 - sink boundary: retention is housekeeping, never fatal
                logger.error("pruning audit sink %s failed: %s", writer.sink.name, _describe(exc))
        return anchors
