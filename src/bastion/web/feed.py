"""`LiveFeed`: recent calls and notices in a bounded ring buffer, fanned out to live-feed (SSE) subscribers.

Rules:
- It observes like audit does (an `ExchangeObserver` with an `on_notice` hook) but is never strict: recording is a
  few appends, never awaits anything, never raises into the call path.
- Items are the same records audit writes (`event_from_exchange` / `event_from_notice`): arguments as forwarded,
  after redaction, findings without matched text. Nothing else about a call is kept.
- Every subscriber has a bounded backlog. One that falls further behind is dropped (its stream ends and the
  browser reconnects from `Last-Event-ID`); publishing never waits for a reader.
- Counters for the overview (per-minute calls, denials, findings; top tools and principals) cover what this
  replica saw since it started; the audit store answers for longer periods.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bastion.audit.event import EXCHANGE_KIND, event_from_exchange, event_from_notice
from bastion.pipeline.approvals import PendingApproval
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.notice import Notice, NoticeKind

MAX_ARGUMENT_BYTES: Final = 4096
"""Arguments kept per feed item, in bytes of JSON (larger ones keep a truncated preview, like audit)."""
SERIES_MINUTES: Final = 60
"""Minutes of per-minute counters kept for the overview charts."""
TOP_KEYS_LIMIT: Final = 5000
"""Distinct tools or principals counted before the rarest are forgotten (bounds memory under odd traffic)."""
ALERTS_KEPT: Final = 100
"""Most recent alerts (warnings, critical notices, tool changes) kept for the overview."""
_QUIET_METHODS: Final = frozenset({"ping", "notifications/initialized", "notifications/cancelled"})
"""Protocol housekeeping left out of the feed (audit still records it)."""
_ALERT_KINDS: Final = frozenset({NoticeKind.ALERT, NoticeKind.TOOL_CHANGED, NoticeKind.TOOL_POISONED})
FILTER_KEYS: Final = ("principal", "server", "tool", "outcome", "kind")
"""Query parameters a feed listing or stream can be filtered by (exact match)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedItem:
    """One entry of the feed: a call (an exchange) or a notice, as its audit record."""

    seq: int
    """Position in this feed, from 1 (the SSE event id)."""
    event: dict[str, Any]
    """The audit record content (`AuditEvent.content()`)."""

    @property
    def id(self) -> str:
        return str(self.event.get("event_id", ""))

    @property
    def is_call(self) -> bool:
        return self.event.get("kind") == EXCHANGE_KIND

    def findings(self) -> list[dict[str, Any]]:
        """Every finding of every stage decision, in order."""
        return [f for d in self.event.get("decisions") or () for f in d.get("findings") or ()]

    def field(self, key: str) -> str:
        """The value a filter compares (`tool` is the target of a call)."""
        if key == "tool":
            return str(self.event.get("target", ""))
        return str(self.event.get(key, ""))

    def summary(self) -> dict[str, Any]:
        """What a feed row shows: who, what, where, the decision, and the finding types (never values)."""
        event = self.event
        findings = self.findings()
        return {
            "seq": self.seq,
            "id": self.id,
            "kind": event.get("kind", ""),
            "time": event.get("time", 0.0),
            "principal": event.get("principal", ""),
            "server": event.get("server", ""),
            "method": event.get("method", ""),
            "tool": event.get("target", ""),
            "outcome": event.get("outcome", ""),
            "rule": event.get("rule", ""),
            "error_reason": event.get("error_reason", ""),
            "severity": event.get("severity", ""),
            "findings": len(findings),
            "finding_types": sorted({f"{f.get('detector')}.{f.get('type')}" for f in findings}),
            "latency_ms": event.get("latency_ms", 0.0),
        }


def matches(item: FeedItem, filters: Mapping[str, str]) -> bool:
    """Whether the item passes every non-empty filter (exact match on `FILTER_KEYS`)."""
    return all(item.field(k) == v for k, v in filters.items() if v and k in FILTER_KEYS)


class Subscription:
    """One live-feed reader: a bounded backlog and a wake-up event. Built by `LiveFeed.subscribe()`."""

    def __init__(self, limit: int, filters: Mapping[str, str]) -> None:
        self.limit = limit
        self.filters = {k: v for k, v in filters.items() if v and k in FILTER_KEYS}
        self.dropped = False
        """True once the reader fell more than `limit` items behind; its stream must end."""
        self.closed = False
        """True once the feed closed (shutdown); its stream must end."""
        self._backlog: deque[tuple[str, dict[str, Any]]] = deque()
        self._wake = asyncio.Event()

    def offer(self, name: str, data: dict[str, Any]) -> None:
        """Queue one event for this reader, or drop the reader if it is too far behind. Never waits."""
        if self.dropped:
            return
        if len(self._backlog) >= self.limit:
            self.dropped = True
            self._backlog.clear()
        else:
            self._backlog.append((name, data))
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next(self, timeout: float) -> list[tuple[str, dict[str, Any]]]:
        """Wait up to `timeout` seconds for events; an empty list means none came (send a keep-alive)."""
        if not self._backlog and not self.dropped and not self.closed:
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                return []
        self._wake.clear()
        items = list(self._backlog)
        self._backlog.clear()
        return items


@dataclass(slots=True)
class _Minute:
    calls: int = 0
    denials: int = 0
    findings: int = 0


@dataclass(slots=True)
class FeedStats:
    """Counters behind the overview page."""

    started: float = field(default_factory=time.time)
    calls: int = 0
    denials: int = 0
    findings: int = 0
    minutes: dict[int, _Minute] = field(default_factory=dict)
    tools: Counter[str] = field(default_factory=Counter)
    principals: Counter[str] = field(default_factory=Counter)
    alerts: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=ALERTS_KEPT))

    def series(self, now: float, minutes: int = SERIES_MINUTES) -> list[dict[str, Any]]:
        """One point per minute for the last `minutes` minutes, oldest first (zeros where nothing happened)."""
        current = int(now // 60)
        out = []
        for minute in range(current - minutes + 1, current + 1):
            m = self.minutes.get(minute) or _Minute()
            out.append({"t": minute * 60, "calls": m.calls, "denials": m.denials, "findings": m.findings})
        return out


def _bounded_count(counter: Counter[str], key: str) -> None:
    counter[key] += 1
    if len(counter) > TOP_KEYS_LIMIT:
        for rare, _n in counter.most_common()[TOP_KEYS_LIMIT // 2 :]:
            del counter[rare]


class LiveFeed:
    """Ring buffer of recent calls and notices, overview counters, and fan-out to live subscribers."""

    def __init__(
        self,
        *,
        capacity: int = 1000,
        subscriber_queue: int = 256,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.capacity = capacity
        self.subscriber_queue = subscriber_queue
        self.stats = FeedStats(started=clock())
        self._clock = clock
        self._items: deque[FeedItem] = deque()
        self._by_id: dict[str, FeedItem] = {}
        self._seq = itertools.count(1)
        self._subscribers: set[Subscription] = set()

    # -- observing --------------------------------------------------------------------------------------------

    async def on_exchange(self, exchange: Exchange) -> None:
        """Record a finished call (rejections included)."""
        if exchange.method in _QUIET_METHODS:
            return
        event = event_from_exchange(exchange, max_argument_bytes=MAX_ARGUMENT_BYTES, now=self._clock())
        self.record(event.content())

    async def on_notice(self, notice: Notice) -> None:
        """Record a notable event; warnings, critical ones and tool changes also become alerts."""
        self.record(event_from_notice(notice).content())

    def on_approval(self, change: str, item: PendingApproval) -> None:
        """`ApprovalQueue` listener: tell live pages a call is waiting, or was answered."""
        self._publish("approval", {"change": change, **item.to_dict()}, None)

    def record(self, event: dict[str, Any]) -> FeedItem:
        """Add one audit record to the buffer, the counters and every matching subscriber."""
        item = FeedItem(seq=next(self._seq), event=event)
        if len(self._items) >= self.capacity:
            old = self._items.popleft()
            self._by_id.pop(old.id, None)
        self._items.append(item)
        self._by_id[item.id] = item
        self._count(item)
        self._publish("call" if item.is_call else "notice", item.summary(), item)
        return item

    def _count(self, item: FeedItem) -> None:
        stats = self.stats
        event = item.event
        if not item.is_call:
            kind, severity = event.get("kind"), event.get("severity")
            if kind in _ALERT_KINDS or severity in ("warning", "critical"):
                stats.alerts.append(item.summary() | {"detail": dict(event.get("detail") or {})})
            return
        minute = stats.minutes.setdefault(int(float(event.get("time", 0.0)) // 60), _Minute())
        if len(stats.minutes) > SERIES_MINUTES * 2:
            for old in sorted(stats.minutes)[:-SERIES_MINUTES]:
                del stats.minutes[old]
        found = len(item.findings())
        stats.findings += found
        minute.findings += found
        if event.get("outcome") == "deny":
            stats.denials += 1
            minute.denials += 1
        if not event.get("server"):
            return  # answered by Bastion itself (initialize, merged lists): not a call to a tool
        stats.calls += 1
        minute.calls += 1
        _bounded_count(stats.principals, str(event.get("principal", "")))
        if event.get("method") == "tools/call":
            _bounded_count(stats.tools, f"{event.get('server')}__{event.get('target')}")

    # -- reading ----------------------------------------------------------------------------------------------

    def get(self, event_id: str) -> FeedItem | None:
        """A recent item by its event id (None once it left the buffer)."""
        return self._by_id.get(event_id)

    def recent(
        self, filters: Mapping[str, str] | None = None, *, after: int = 0, limit: int = 200
    ) -> list[FeedItem]:
        """Newest first, at most `limit`, only those after feed position `after` that pass `filters`."""
        out: list[FeedItem] = []
        for item in reversed(self._items):
            if item.seq <= after or len(out) >= limit:
                break
            if matches(item, filters or {}):
                out.append(item)
        return out

    def overview(self, top: int = 10) -> dict[str, Any]:
        """Totals, the per-minute series, top tools and principals, and recent alerts."""
        stats = self.stats
        return {
            "since": stats.started,
            "calls": stats.calls,
            "denials": stats.denials,
            "findings": stats.findings,
            "series": stats.series(self._clock()),
            "top_tools": [{"name": k, "calls": n} for k, n in stats.tools.most_common(top)],
            "top_principals": [{"name": k, "calls": n} for k, n in stats.principals.most_common(top)],
            "alerts": list(reversed(stats.alerts)),
        }

    # -- live subscribers -------------------------------------------------------------------------------------

    def subscribe(self, filters: Mapping[str, str] | None = None) -> Subscription:
        """A new live reader; call `unsubscribe()` when its stream ends."""
        subscription = Subscription(self.subscriber_queue, filters or {})
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def close(self) -> None:
        """End every live stream (at shutdown, so open dashboards do not hold the server's graceful stop)."""
        for subscription in list(self._subscribers):
            subscription.close()
        self._subscribers.clear()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def _publish(self, name: str, data: dict[str, Any], item: FeedItem | None) -> None:
        for subscription in list(self._subscribers):
            if item is not None and not matches(item, subscription.filters):
                continue
            subscription.offer(name, data)
            if subscription.dropped:
                self._subscribers.discard(subscription)
