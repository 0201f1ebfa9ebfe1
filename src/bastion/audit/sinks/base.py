"""The audit seams: `AuditSink` writes events durably (the recorder), `AuditReader` queries and verifies them.

Rules:
- `write()` returns only once the events are durable (committed, fsynced as configured); it raises otherwise
  and then none of the batch counts as written (a retry may resend it: writes skip event ids already stored).
- The sink links events into its chain for `replica` inside its own transaction or file lock, so several
  processes writing the same chain (two `bastion stdio` on one host) still produce one valid chain.
- Events are stored as their exact canonical content bytes plus a few indexed columns for queries; a reader
  reports an indexed column that disagrees with the content as `StoredEvent.mismatch`.
- Readers never return matched secrets because none are stored: the content is built by `event.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

import orjson

from bastion.audit.chain import Anchor, ChainHead, StoredEvent
from bastion.audit.event import AuditEvent, canonical
from bastion.audit.signing import SigningKey

INDEXED_COLUMNS: Final = (
    "event_id",
    "kind",
    "time",
    "session_id",
    "principal",
    "server",
    "target",
    "method",
    "outcome",
)
"""Content fields copied into their own columns for search and stats."""
GROUP_BY: Final = {
    "outcome": "outcome",
    "principal": "principal",
    "server": "server",
    "target": "target",
    "kind": "kind",
    "method": "method",
    "tool": "server || '__' || target",
}
"""What `count()` may group by, and the SQL expression for it (whitelisted: it is interpolated into SQL)."""


def group_value(event: AuditEvent, by: str) -> str:
    """The `count()` grouping value of one event, for sinks without SQL."""
    return f"{event.server}__{event.target}" if by == "tool" else str(getattr(event, by))


NAMESPACE_SEPARATOR: Final = "__"
SCAN_PAGE: Final = 1000
"""Rows fetched per round trip while scanning a chain."""


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event ready for a sink: its canonical content bytes and its indexed column values."""

    content: bytes
    columns: tuple[Any, ...]
    """Values of `INDEXED_COLUMNS`, in that order."""

    @property
    def event_id(self) -> str:
        return str(self.columns[0])

    @classmethod
    def of(cls, event: AuditEvent) -> EncodedEvent:
        return cls.of_content(event.content())

    @classmethod
    def of_content(cls, content: dict[str, Any]) -> EncodedEvent:
        return cls(canonical(content), tuple(content[c] for c in INDEXED_COLUMNS))


def column_mismatch(content: bytes, columns: Sequence[Any]) -> str:
    """The first indexed column whose stored value differs from the content ('' when all agree)."""
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError:
        return "content"
    if not isinstance(parsed, dict):
        return "content"
    for name, value in zip(INDEXED_COLUMNS, columns, strict=True):
        if parsed.get(name) != value:
            return name
    return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditQuery:
    """Filters shared by search, export and stats. All given filters must match."""

    principal: str | None = None
    server: str | None = None
    tool: str | None = None
    """A tool, prompt or resource: `server__name` (namespaced, as clients see it) or the upstream-local name."""
    decision: str | None = None
    """The outcome: `allow`, `deny`, `error`, `flag`, `redact`, `cancelled` (or a notice severity)."""
    kind: str | None = None
    """`exchange` or a notice kind."""
    session_id: str | None = None
    replica: str | None = None
    since: float | None = None
    """Epoch seconds, inclusive."""
    until: float | None = None
    """Epoch seconds, exclusive."""
    limit: int = 100
    offset: int = 0
    order: Literal["asc", "desc"] = "desc"
    """By time: newest first (`desc`) or oldest first."""

    def equalities(self) -> list[tuple[str, str]]:
        """(column, value) pairs that must be equal."""
        pairs = [
            ("principal", self.principal),
            ("server", self.server),
            ("outcome", self.decision),
            ("kind", self.kind),
            ("session_id", self.session_id),
            ("replica", self.replica),
        ]
        if self.tool:
            server, sep, local = self.tool.partition(NAMESPACE_SEPARATOR)
            if sep and server and local:
                pairs += [("server", server), ("target", local)]
            else:
                pairs.append(("target", self.tool))
        return [(c, v) for c, v in pairs if v is not None]

    def matches(self, event: AuditEvent) -> bool:
        """The same filter in Python (for sinks without SQL)."""
        for column, value in self.equalities():
            if getattr(event, column) != value:
                return False
        if self.since is not None and event.time < self.since:
            return False
        return self.until is None or event.time < self.until


def sql_where(query: AuditQuery, placeholder: Callable[[int], str]) -> tuple[str, list[Any]]:
    """A `WHERE ...` clause (or '') and its parameters; `placeholder(i)` spells the i-th (1-based) parameter."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in query.equalities():
        params.append(value)
        clauses.append(f"{column} = {placeholder(len(params))}")
    if query.since is not None:
        params.append(query.since)
        clauses.append(f"time >= {placeholder(len(params))}")
    if query.until is not None:
        params.append(query.until)
        clauses.append(f"time < {placeholder(len(params))}")
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


class AuditSink(Protocol):
    """The writer side, all the recorder needs: makes events durable, checkpoints and prunes them.

    Implementations: `SqliteAuditSink`, `PostgresAuditSink`, `JsonlAuditSink` (each is also an `AuditReader`).
    """

    name: str

    async def open(self) -> None:
        """Connect and create the schema/files; idempotent."""
        ...

    async def write(self, replica: str, events: Sequence[EncodedEvent]) -> ChainHead:
        """Link `events` into `replica`'s chain and make them durable; returns the new head."""
        ...

    async def write_anchor(self, anchor: Anchor) -> None:
        """Store a checkpoint or prune anchor."""
        ...

    async def prune(self, before: float, key: SigningKey | None = None) -> list[Anchor]:
        """Delete each chain's events up to the last one older than `before`, leaving prune anchors."""
        ...

    async def aclose(self) -> None: ...


class AuditReader(Protocol):
    """The reader side, all the CLI, `verify` and the dashboard need: queries and chain access."""

    name: str

    async def search(self, query: AuditQuery) -> list[AuditEvent]:
        """Events matching `query`, ordered by time as it asks, paged by limit/offset."""
        ...

    async def get(self, event_id: str) -> AuditEvent | None: ...

    async def count(
        self, query: AuditQuery, *, by: str, bucket_seconds: float | None = None
    ) -> list[tuple[float | None, str, int]]:
        """(bucket start or None, value of column `by`, count) for events matching `query` (limit ignored)."""
        ...

    async def tail(self, n: int) -> tuple[list[AuditEvent], str]:
        """The last `n` events in write order, and a cursor for `read_after`."""
        ...

    async def read_after(self, cursor: str, limit: int = 1000) -> tuple[list[AuditEvent], str]:
        """Events written after `cursor`, and the next cursor (`tail -f`)."""
        ...

    async def replicas(self) -> list[str]:
        """Every chain this sink holds."""
        ...

    def scan(self, replica: str) -> AsyncIterator[StoredEvent]:
        """One chain's events in stored order (by seq for databases, by position for files)."""
        ...

    async def anchors(self, replica: str) -> list[Anchor]: ...

    async def head(self, replica: str) -> ChainHead | None:
        """The head the writer recorded (None when the sink keeps none)."""
        ...


class Sink(AuditSink, AuditReader, Protocol):
    """Both sides, as every implementation provides them (what `build_sink` returns and the recorder holds)."""
