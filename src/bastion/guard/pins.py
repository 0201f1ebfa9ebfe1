"""`ToolPins`: trust-on-first-use pins of tool definitions (rug-pull defence), kept as state records (`RecordStore`).

The first definition Bastion sees of each tool of each server is pinned: its SHA-256 over canonical JSON is stored
with the definition itself. A later definition with another hash is a *change*: it is recorded as pending next to
the pin and, depending on `guardrails.rug_pull`, held back from clients until an operator approves it. Approving
makes the pending definition the new pin; rejecting keeps the old pin and keeps the new definition held.

This module does no network I/O besides the store, knows nothing of the gateway, and is what the CLI (`bastion
tools ...`), the gateway's tool screen and the dashboard's admin API share. With the Redis store, pins and
decisions are shared by every replica.

Rules:
- One record per (server, tool) in the `tool-pins` namespace, id `<server>/<tool>` (server names never hold `/`).
- Trust on first use is per server: the tools of a server's first complete listing are pinned as they are (the
  server is then marked pinned, record `<server>` in `tool-pin-servers`). A tool that appears later is held like a
  changed one: a pin with no approved definition (`hash` empty) and the new definition pending.
- `status` is `pinned` (serve the pinned definition's hash), `changed` (a pending definition waits for a decision)
  or `rejected` (an operator refused the pending definition; it stays held, without a new notice).
- An upstream that goes back to the pinned definition clears the pending one (status `pinned` again).
- `approve` can be bound to the pending hash the operator reviewed, so a definition that changed again in the
  meantime is never approved unseen.
- Every write is a compare-and-set against the record as read (`RecordStore.replace_record`), retried on conflict:
  a replica recording a new definition and an operator approving the previous one cannot undo each other.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from bastion.errors import InternalError
from bastion.state.base import RecordStore

NAMESPACE: Final = "tool-pins"
"""Record namespace of the pins."""
SERVERS_NAMESPACE: Final = "tool-pin-servers"
"""Record namespace of the servers whose first listing was pinned."""


def canonical_json(definition: Mapping[str, Any]) -> str:
    """The byte-stable JSON form hashed for pins: sorted keys, no whitespace, non-ASCII kept as is."""
    return json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def definition_hash(definition: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a tool definition."""
    return hashlib.sha256(canonical_json(definition).encode("utf-8")).hexdigest()


def record_id(server: str, tool: str) -> str:
    """The record id of a pin."""
    return f"{server}/{tool}"


class PinStatus(enum.StrEnum):
    """Where a pin stands."""

    PINNED = "pinned"
    """The upstream serves (or last served) the pinned definition."""
    CHANGED = "changed"
    """A different definition was seen and waits for an operator."""
    REJECTED = "rejected"
    """An operator refused the pending definition; it stays held."""


class PinCheck(enum.StrEnum):
    """What `ToolPins.observe` found for one definition."""

    NEW = "new"
    """No pin existed: this definition is now pinned."""
    MATCH = "match"
    """The definition is the pinned one."""
    CHANGED = "changed"
    """The definition differs from the pin and waits for approval (first seen now, or earlier)."""
    REJECTED = "rejected"
    """The definition differs from the pin and an operator rejected it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolPin:
    """One pinned tool, as stored."""

    server: str
    """Upstream server name."""
    tool: str
    """The upstream's own tool name (not namespaced)."""
    hash: str
    """SHA-256 of the pinned definition's canonical JSON."""
    definition: dict[str, Any]
    """The pinned definition, as the upstream sent it."""
    pinned_at: float
    """Epoch seconds when this definition was pinned (first seen or approved)."""
    status: PinStatus = PinStatus.PINNED
    pending_hash: str = ""
    """Hash of the definition waiting for a decision (empty when none)."""
    pending_definition: dict[str, Any] | None = None
    """The definition waiting for a decision."""
    changed_at: float = 0.0
    """Epoch seconds when the pending definition was first seen."""
    decided_by: str = ""
    """Who approved or rejected last (free text from the CLI or the dashboard)."""
    decided_at: float = 0.0
    """Epoch seconds of the last approval or rejection."""
    history: tuple[str, ...] = field(default=())
    """Hashes pinned before this one, oldest first (at most `HISTORY_LIMIT`)."""

    @property
    def held(self) -> bool:
        """Whether a pending definition is waiting (changed) or was refused (rejected)."""
        return self.status is not PinStatus.PINNED

    def to_record(self) -> dict[str, Any]:
        """The StateStore record (JSON-able)."""
        return {
            "server": self.server,
            "tool": self.tool,
            "hash": self.hash,
            "definition": self.definition,
            "pinned_at": self.pinned_at,
            "status": str(self.status),
            "pending_hash": self.pending_hash,
            "pending_definition": self.pending_definition,
            "changed_at": self.changed_at,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "history": list(self.history),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ToolPin:
        """Read a stored record (unknown status values read as `changed`: held, the safe side)."""
        try:
            status = PinStatus(record.get("status", "pinned"))
        except ValueError:
            status = PinStatus.CHANGED
        pending = record.get("pending_definition")
        return cls(
            server=str(record["server"]),
            tool=str(record["tool"]),
            hash=str(record["hash"]),
            definition=dict(record.get("definition") or {}),
            pinned_at=float(record.get("pinned_at", 0.0)),
            status=status,
            pending_hash=str(record.get("pending_hash") or ""),
            pending_definition=dict(pending) if isinstance(pending, dict) else None,
            changed_at=float(record.get("changed_at") or 0.0),
            decided_by=str(record.get("decided_by") or ""),
            decided_at=float(record.get("decided_at") or 0.0),
            history=tuple(str(h) for h in record.get("history") or ()),
        )

    def summary(self) -> dict[str, Any]:
        """A listing row for the CLI and the dashboard: hashes and state, no definitions."""
        return {
            "server": self.server,
            "tool": self.tool,
            "status": str(self.status),
            "hash": self.hash,
            "pinned_at": self.pinned_at,
            "pending_hash": self.pending_hash,
            "changed_at": self.changed_at,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
        }


HISTORY_LIMIT: Final = 20
"""Earlier pinned hashes kept per tool."""
CAS_ATTEMPTS: Final = 16
"""Reads and compare-and-set writes of one pin before giving up (others kept changing it meanwhile)."""

PinListener = Callable[[str, ToolPin], Any]
"""Called with (`approved` | `rejected`, the pin after the decision) when a decision is taken in this process."""


def _pretty(definition: Mapping[str, Any] | None) -> list[str]:
    # ensure_ascii: invisible and look-alike characters show up as \\u escapes in a review.
    text = json.dumps(definition or {}, indent=2, sort_keys=True, ensure_ascii=True)
    return [line + "\n" for line in text.splitlines()]


class ToolPins:
    """Pins of every server's tools in one `RecordStore`."""

    def __init__(self, store: RecordStore, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self._clock = clock
        self.listeners: list[PinListener] = []
        """In-process hooks for decisions (the gateway releases a held tool at once instead of at its next poll)."""

    async def get(self, server: str, tool: str) -> ToolPin | None:
        """The pin of one tool, or None."""
        record = await self.store.get_record(NAMESPACE, record_id(server, tool))
        return None if record is None else ToolPin.from_record(record)

    async def list_pins(self, server: str | None = None, *, held_only: bool = False) -> list[ToolPin]:
        """Every pin (of one server), sorted by server then tool."""
        pins = [ToolPin.from_record(r) for _id, r in await self.store.list_records(NAMESPACE)]
        if server is not None:
            pins = [p for p in pins if p.server == server]
        if held_only:
            pins = [p for p in pins if p.held]
        return sorted(pins, key=lambda p: (p.server, p.tool))

    async def observe(
        self,
        server: str,
        definition: Mapping[str, Any],
        *,
        digest: str | None = None,
        record: bool = True,
        first_listing: bool = True,
    ) -> tuple[PinCheck, ToolPin]:
        """Compare a definition with its pin; pin it when new, record it as pending when it differs.

        Args:
            server: upstream server name.
            definition: one tool definition as the upstream listed it (with its `name`).
            digest: its `definition_hash`, when the caller computed it already.
            record: write what was found (False: only report it, e.g. `bastion scan` without `--pin`).
            first_listing: the server's first listing is being pinned (False: a new tool is held as changed).

        Returns:
            What was found, and the pin as stored afterwards (as it would be, with `record=False`).
        """
        tool = str(definition.get("name", ""))
        digest = digest or definition_hash(definition)
        for _attempt in range(CAS_ATTEMPTS):
            now = self._clock()
            stored, pin = await self._load(server, tool)
            if pin is None and not first_listing:
                pin = ToolPin(
                    server=server,
                    tool=tool,
                    hash="",
                    definition={},
                    pinned_at=0.0,
                    status=PinStatus.CHANGED,
                    pending_hash=digest,
                    pending_definition=dict(definition),
                    changed_at=now,
                )
                if record and not await self._swap(stored, pin):
                    continue
                return PinCheck.CHANGED, pin
            if pin is None:
                pin = ToolPin(
                    server=server, tool=tool, hash=digest, definition=dict(definition), pinned_at=now
                )
                if record and not await self._swap(stored, pin):
                    continue  # another replica pinned it first: compare with its pin
                return PinCheck.NEW, pin
            if digest == pin.hash:
                # The upstream went back to the pinned definition: nothing waits any more.
                if pin.held and record:
                    pin = _replace(pin, status=PinStatus.PINNED, pending_hash="", pending_definition=None)
                    if not await self._swap(stored, pin):
                        continue
                return PinCheck.MATCH, pin
            if digest == pin.pending_hash:
                return (PinCheck.REJECTED if pin.status is PinStatus.REJECTED else PinCheck.CHANGED), pin
            pin = _replace(
                pin,
                status=PinStatus.CHANGED,
                pending_hash=digest,
                pending_definition=dict(definition),
                changed_at=now,
            )
            if record and not await self._swap(stored, pin):
                continue
            return PinCheck.CHANGED, pin
        raise _contended(server, tool)

    async def approve(
        self, server: str, tool: str, *, by: str = "", pending_hash: str | None = None
    ) -> ToolPin | None:
        """Make the pending definition the pin; None when there is no such pin or nothing is pending.

        Args:
            server: upstream server name.
            tool: the upstream's tool name.
            by: who approves (recorded).
            pending_hash: approve only if this is still the pending hash (what the operator reviewed).
        """
        for _attempt in range(CAS_ATTEMPTS):
            stored, pin = await self._load(server, tool)
            if pin is None or not pin.pending_hash or pin.pending_definition is None:
                return None
            if pending_hash is not None and pending_hash != pin.pending_hash:
                return None
            now = self._clock()
            approved = _replace(
                pin,
                hash=pin.pending_hash,
                definition=pin.pending_definition,
                pinned_at=now,
                status=PinStatus.PINNED,
                pending_hash="",
                pending_definition=None,
                decided_by=by,
                decided_at=now,
                history=((*pin.history, pin.hash) if pin.hash else pin.history)[-HISTORY_LIMIT:],
            )
            if await self._swap(stored, approved):
                self._announce("approved", approved)
                return approved
        raise _contended(server, tool)

    async def reject(self, server: str, tool: str, *, by: str = "") -> ToolPin | None:
        """Refuse the pending definition (it stays held); None when there is no such pin or nothing is pending."""
        for _attempt in range(CAS_ATTEMPTS):
            stored, pin = await self._load(server, tool)
            if pin is None or not pin.pending_hash:
                return None
            rejected = _replace(pin, status=PinStatus.REJECTED, decided_by=by, decided_at=self._clock())
            if await self._swap(stored, rejected):
                self._announce("rejected", rejected)
                return rejected
        raise _contended(server, tool)

    async def server_pinned(self, server: str) -> bool:
        """Whether the server's first listing was pinned already (later new tools are then held)."""
        return await self.store.get_record(SERVERS_NAMESPACE, server) is not None

    async def mark_server_pinned(self, server: str) -> None:
        await self.store.put_record(SERVERS_NAMESPACE, server, {"pinned_at": self._clock()})

    async def forget(self, server: str, tool: str) -> bool:
        """Drop a pin entirely (the next definition seen is pinned afresh); True when it existed."""
        return await self.store.delete_record(NAMESPACE, record_id(server, tool))

    async def _load(self, server: str, tool: str) -> tuple[dict[str, Any] | None, ToolPin | None]:
        """The stored record as it is (what a compare-and-set compares with) and the pin read from it."""
        stored = await self.store.get_record(NAMESPACE, record_id(server, tool))
        return stored, None if stored is None else ToolPin.from_record(stored)

    async def _swap(self, stored: dict[str, Any] | None, pin: ToolPin) -> bool:
        """Write `pin` if the record is still `stored`: replicas and the CLI never overwrite each other's decision."""
        return await self.store.replace_record(
            NAMESPACE, record_id(pin.server, pin.tool), pin.to_record(), expected=stored
        )

    def _announce(self, event: str, pin: ToolPin) -> None:
        for listener in self.listeners:
            listener(event, pin)


def diff(pin: ToolPin, *, context: int = 3) -> str:
    """A unified diff from the pinned definition to the pending one ("" when nothing is pending)."""
    if pin.pending_definition is None:
        return ""
    lines = difflib.unified_diff(
        _pretty(pin.definition),
        _pretty(pin.pending_definition),
        fromfile=f"{pin.server}/{pin.tool} pinned {pin.hash[:12]}",
        tofile=f"{pin.server}/{pin.tool} pending {pin.pending_hash[:12]}",
        n=context,
    )
    return "".join(lines)


def _replace(pin: ToolPin, **changes: Any) -> ToolPin:
    return dataclasses.replace(pin, **changes)


def _contended(server: str, tool: str) -> InternalError:
    # Practically unreachable; raising makes the tool screen fail closed (the tool is withheld) instead of guessing.
    return InternalError(f"the pin of {server}/{tool} kept changing while it was being updated")
