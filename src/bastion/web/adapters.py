"""Adapters between the dashboard and parts of Bastion it reads but does not own: the audit store, tool pins.

Each seam is one small Protocol with the few calls the dashboard makes, plus a function that finds the real
implementation in the runtime (`runtime.audit`, the `AuditRecorder`; `runtime.guardrails.pins`,
the guard's `ToolPins`). Where a part is missing (audit switched off, pinning not configured) the adapter
degrades to what the dashboard can know by itself (the live feed's recent events) or to "not available", so the
pages still render and say why.

Rules:
- Everything returned is already secret-free (audit records and tool definitions hold no credentials); adapters
  never add configuration values (upstream env, headers, URLs) to what they return.
- Filters are exact matches; times are epoch seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bastion.web.feed import LiveFeed

if TYPE_CHECKING:
    from bastion.audit.recorder import AuditRecorder
    from bastion.guard.pins import ToolPins


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditFilters:
    """An audit search: every given filter must match."""

    principal: str = ""
    server: str = ""
    tool: str = ""
    """Upstream-local name, or `server__name` as clients see it."""
    outcome: str = ""
    """`allow`, `deny`, `error`, `flag`, `redact`, `cancelled`, or a notice severity."""
    kind: str = ""
    """`exchange` or a notice kind."""
    since: float | None = None
    until: float | None = None
    limit: int = 100
    offset: int = 0


class AuditSource(Protocol):
    """Where the audit page and the event view read from."""

    name: str
    """Shown on the page (`sqlite`, `postgres`, or `live feed (recent only)`)."""
    durable: bool
    """False when only this replica's recent in-memory events are searched."""

    async def search(self, filters: AuditFilters) -> list[dict[str, Any]]:
        """Matching events, newest first, as `AuditEvent.to_dict()`."""
        ...

    async def get(self, event_id: str) -> dict[str, Any] | None: ...

    async def verify(self) -> list[dict[str, Any]]:
        """One chain report per replica (`ChainReport.to_dict()`); empty when verification is unavailable."""
        ...


def _split_tool(tool: str) -> tuple[str, str]:
    server, sep, local = tool.partition("__")
    return (server, local) if sep and server and local else ("", tool)


class FeedAuditSource:
    """Searches the live feed's ring buffer: what this replica saw recently. Used when no audit store answers."""

    name = "live feed (recent events on this replica only)"
    durable = False

    def __init__(self, feed: LiveFeed) -> None:
        self._feed = feed

    async def search(self, filters: AuditFilters) -> list[dict[str, Any]]:
        server, tool = _split_tool(filters.tool)
        wanted = {
            "principal": filters.principal,
            "server": server or filters.server,
            "tool": tool,
            "outcome": filters.outcome,
            "kind": filters.kind,
        }
        out: list[dict[str, Any]] = []
        for item in self._feed.recent(wanted, limit=self._feed.capacity):
            when = float(item.event.get("time", 0.0))
            if filters.since is not None and when < filters.since:
                continue
            if filters.until is not None and when >= filters.until:
                continue
            out.append(dict(item.event))
        return out[filters.offset : filters.offset + filters.limit]

    async def get(self, event_id: str) -> dict[str, Any] | None:
        item = self._feed.get(event_id)
        return None if item is None else dict(item.event)

    async def verify(self) -> list[dict[str, Any]]:
        return []


def audit_source(recorder: Any, feed: LiveFeed) -> AuditSource:
    """The audit recorder's reader when audit is on (`runtime.audit.recorder`), else the live feed."""
    if recorder is not None:
        return RecorderAuditSource(recorder, fallback=feed)
    return FeedAuditSource(feed)


class RecorderAuditSource:
    """The audit package's query and verify functions over the running `AuditRecorder`'s reader."""

    durable = True

    def __init__(self, recorder: AuditRecorder, *, fallback: LiveFeed) -> None:
        self._recorder = recorder
        self._fallback = FeedAuditSource(fallback)
        self.name = f"audit store ({recorder.reader.name})"

    async def search(self, filters: AuditFilters) -> list[dict[str, Any]]:
        from bastion.audit import query

        events = await query.search(
            self._recorder.reader,
            principal=filters.principal or None,
            server=filters.server or None,
            tool=filters.tool or None,
            decision=filters.outcome or None,
            kind=filters.kind or None,
            since=filters.since,
            until=filters.until,
            limit=filters.limit,
            offset=filters.offset,
        )
        return [event.to_dict() for event in events]

    async def get(self, event_id: str) -> dict[str, Any] | None:
        from bastion.audit import query

        event = await query.get(self._recorder.reader, event_id)
        if event is None:
            return await self._fallback.get(event_id)  # not committed yet (relaxed mode): the feed has it
        result: dict[str, Any] = event.to_dict()
        return result

    async def verify(self) -> list[dict[str, Any]]:
        from bastion.audit.verify import verify

        report = await verify(self._recorder.reader, key=self._recorder.key)
        return [chain.to_dict() for chain in report.chains]


# -- tool definition pins (rug-pull protection) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PinView:
    """One tool's pinned definition and, when it changed upstream, the new one waiting for a decision."""

    server: str
    tool: str
    """Upstream-local tool name."""
    status: str
    """`pinned` (matches), `changed` (differs from the pin, held) or `rejected` (refused, still held)."""
    pinned: dict[str, Any]
    """The approved definition (name, description, inputSchema, annotations)."""
    pending: dict[str, Any] | None = None
    """The definition the upstream now serves, when it differs from the pin."""
    pending_hash: str = ""
    """Hash of `pending`: an approval names it, so a definition that changed again is never approved unseen."""
    diff: tuple[str, ...] = ()
    """Unified diff from `pinned` to `pending`, one line per item."""
    decided_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "tool": self.tool,
            "status": self.status,
            "pinned": self.pinned,
            "pending": self.pending,
            "pending_hash": self.pending_hash,
            "diff": list(self.diff),
            "decided_by": self.decided_by,
        }


class ToolPinsView(Protocol):
    """Pinned tool definitions and the decisions on changed ones."""

    async def list(self) -> list[PinView]:
        """Every pin, by server then tool."""
        ...

    async def approve(self, server: str, tool: str, *, by: str, pending_hash: str | None) -> bool:
        """Make the pending definition the pin; False when nothing (or another definition) is pending."""
        ...

    async def reject(self, server: str, tool: str, *, by: str) -> bool:
        """Keep the old pin (the changed tool stays held); False when nothing is pending."""
        ...


class GuardPins:
    """`ToolPinsView` over the guard package's `ToolPins` (records in the `StateStore`)."""

    def __init__(self, pins: ToolPins) -> None:
        self._pins = pins

    async def list(self) -> list[PinView]:
        from bastion.guard.pins import diff

        return [
            PinView(
                server=pin.server,
                tool=pin.tool,
                status=str(pin.status),
                pinned=pin.definition,
                pending=pin.pending_definition,
                pending_hash=pin.pending_hash,
                diff=tuple(diff(pin).splitlines()),
                decided_by=pin.decided_by,
            )
            for pin in await self._pins.list_pins()
        ]

    async def approve(self, server: str, tool: str, *, by: str, pending_hash: str | None) -> bool:
        return await self._pins.approve(server, tool, by=by, pending_hash=pending_hash or None) is not None

    async def reject(self, server: str, tool: str, *, by: str) -> bool:
        return await self._pins.reject(server, tool, by=by) is not None


def tool_pins(pins: Any) -> ToolPinsView | None:
    """The pins when guardrails run with `rug_pull` on (`runtime.guardrails.pins`), else None."""
    return GuardPins(pins) if pins is not None else None
