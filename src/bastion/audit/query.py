"""Reading the audit trail: search, get, stats over time windows, and opening a reader from config.

This is the API the CLI and the admin API/dashboard share. Every function takes an `AuditReader` (a running
gateway's `AuditRecorder.reader`, or one opened with `open_reader()`), so they work on any sink.

Example:
    async with open_reader(config.audit) as reader:
        denied = await search(reader, decision="deny", since=parse_time("24h"))
        load = await stats(reader, since=parse_time("7d"), bucket_seconds=3600)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypedDict, Unpack

from bastion.audit.config import AuditConfig, PostgresSinkConfig, sink_name
from bastion.audit.event import EXCHANGE_KIND, AuditEvent
from bastion.audit.reach import reaching, safe_location
from bastion.audit.sinks import AuditQuery, AuditReader, Sink, build_sink

_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_LIMIT: Final = 10_000
"""Largest page `search()` returns."""


def parse_time(text: str, *, now: float | None = None) -> float:
    """Epoch seconds from `1767225600`, an ISO 8601 time (`2026-01-01T12:00:00Z`; naive means UTC), or a
    duration back from now (`15m`, `24h`, `7d`).

    Raises:
        ValueError: the text is none of these.
    """
    text = text.strip()
    match = _DURATION.match(text)
    if match:
        return (now if now is not None else time.time()) - float(match.group(1)) * _UNIT_SECONDS[
            match.group(2)
        ]
    with contextlib.suppress(ValueError):
        return float(text)
    moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def format_time(epoch: float) -> str:
    """ISO 8601 UTC with milliseconds: `2026-01-01T12:00:00.123Z`."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class QueryFilters(TypedDict, total=False):
    """The filters `make_query` and `search` take; every one is optional."""

    principal: str | None
    """Exact principal name."""
    server: str | None
    """Upstream server name."""
    tool: str | None
    """Tool, prompt or resource: namespaced (`calc__add`) or upstream-local (`add`)."""
    decision: str | None
    """Outcome: `allow`, `deny`, `error`, `flag`, `redact`, `cancelled` (notices: their severity)."""
    kind: str | None
    """`exchange` or a notice kind (`session_start`, `auth_failure`, `alert`...)."""
    session_id: str | None
    """One client session."""
    replica: str | None
    """One replica's events."""
    since: float | None
    """Epoch seconds, inclusive (see `parse_time`)."""
    until: float | None
    """Epoch seconds, exclusive."""
    limit: int
    """Page size (default 100, at most `MAX_LIMIT`)."""
    offset: int
    """Events to skip (paging)."""
    order: Literal["asc", "desc"]
    """`desc` (newest first, the default) or `asc`."""


def make_query(**filters: Unpack[QueryFilters]) -> AuditQuery:
    """An `AuditQuery` with empty filters dropped and the page size clamped to 1..`MAX_LIMIT`."""
    return AuditQuery(
        principal=filters.get("principal") or None,
        server=filters.get("server") or None,
        tool=filters.get("tool") or None,
        decision=filters.get("decision") or None,
        kind=filters.get("kind") or None,
        session_id=filters.get("session_id") or None,
        replica=filters.get("replica") or None,
        since=filters.get("since"),
        until=filters.get("until"),
        limit=max(1, min(filters.get("limit", 100), MAX_LIMIT)),
        offset=max(0, filters.get("offset", 0)),
        order=filters.get("order", "desc"),
    )


async def search(reader: AuditReader, **filters: Unpack[QueryFilters]) -> list[AuditEvent]:
    """Events matching every given filter (see `QueryFilters`), newest first by default.

    `reader` is where to read: `AuditRecorder.reader` or `open_reader()`.
    """
    return await reader.search(make_query(**filters))


async def get(reader: AuditReader, event_id: str) -> AuditEvent | None:
    """One event by id (the exchange or notice id), or None."""
    return await reader.get(event_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsBucket:
    """Counts in one time window."""

    start: float
    """Window start, epoch seconds (a multiple of the bucket size)."""
    total: int
    outcomes: dict[str, int]
    """Events per outcome in the window."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditStats:
    """Counts over a time range: per window, per outcome, and the busiest principals and tools."""

    since: float
    until: float
    bucket_seconds: float
    total: int
    outcomes: dict[str, int]
    buckets: list[StatsBucket] = field(default_factory=list)
    top_principals: list[tuple[str, int]] = field(default_factory=list)
    top_tools: list[tuple[str, int]] = field(default_factory=list)
    """Namespaced tool names (`server__tool`) with their call counts."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since,
            "until": self.until,
            "bucket_seconds": self.bucket_seconds,
            "total": self.total,
            "outcomes": self.outcomes,
            "buckets": [{"start": b.start, "total": b.total, "outcomes": b.outcomes} for b in self.buckets],
            "top_principals": [list(p) for p in self.top_principals],
            "top_tools": [list(t) for t in self.top_tools],
        }


async def stats(
    reader: AuditReader,
    *,
    since: float,
    until: float | None = None,
    bucket_seconds: float = 3600.0,
    kind: str | None = EXCHANGE_KIND,
    principal: str | None = None,
    server: str | None = None,
    tool: str | None = None,
    top: int = 10,
) -> AuditStats:
    """Counts of events in `[since, until)` per `bucket_seconds` window and per outcome.

    Args:
        reader: Where to read.
        since: Range start, epoch seconds.
        until: Range end (default: now).
        bucket_seconds: Window size (e.g. 60, 3600, 86400).
        kind: Only this kind (default: exchanges, i.e. calls); None counts notices too.
        principal: Only this principal.
        server: Only this server.
        tool: Only this tool (namespaced or local name).
        top: How many principals and tools to rank.
    """
    end = until if until is not None else time.time()
    query = make_query(kind=kind, principal=principal, server=server, tool=tool, since=since, until=end)
    rows = await reader.count(query, by="outcome", bucket_seconds=bucket_seconds)
    buckets: dict[float, dict[str, int]] = {}
    outcomes: dict[str, int] = {}
    for start, outcome, n in rows:
        window = buckets.setdefault(start or 0.0, {})
        window[outcome] = window.get(outcome, 0) + n
        outcomes[outcome] = outcomes.get(outcome, 0) + n
    principals = await reader.count(query, by="principal")
    tools = await reader.count(query, by="tool") if kind == EXCHANGE_KIND else []
    return AuditStats(
        since=since,
        until=end,
        bucket_seconds=bucket_seconds,
        total=sum(outcomes.values()),
        outcomes=outcomes,
        buckets=[StatsBucket(start=s, total=sum(o.values()), outcomes=o) for s, o in sorted(buckets.items())],
        top_principals=_top(principals, top),
        top_tools=_top([r for r in tools if r[1] != "__"], top),
    )


def _top(rows: list[tuple[float | None, str, int]], n: int) -> list[tuple[str, int]]:
    return sorted(((v, c) for _, v, c in rows), key=lambda r: (-r[1], r[0]))[:n]


@contextlib.asynccontextmanager
async def open_reader(config: AuditConfig, *, sink: str | None = None) -> AsyncIterator[Sink]:
    """Open one configured sink for reading: the named one, or the first (the one that answers queries).

    Raises:
        KeyError: no sink has that name.
        StoreUnreachable: the sink cannot be opened (its database is down or refuses the connection).
    """
    chosen = next((s for s in config.sinks if sink is None or sink_name(s) == sink), None)
    if chosen is None:
        raise KeyError(sink)
    reader = build_sink(chosen)
    if isinstance(chosen, PostgresSinkConfig):
        url = chosen.url.get_secret_value()
        where = safe_location(url)
    else:
        url, where = "", chosen.path
    async with reaching(f"audit sink {sink_name(chosen)} ({where})", url):
        await reader.open()
    try:
        yield reader
    finally:
        await reader.aclose()
