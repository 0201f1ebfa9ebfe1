"""`ToolScreen`: judges every tool definition an upstream lists (poisoning and rug pulls) before clients see it.

The catalogue runs each upstream's complete tool list through the listing chain before caching it; the screen is
its `ToolScreenStage` (`pipeline/stages/listing.py`, placed by the composition root), so a withheld tool is absent
from every list *and* unknown to routing: calling it gets exactly the error an unknown tool gets. `bastion scan` uses the same screen, without a gateway, through `screen_one`.

Rules:
- Each definition is inspected alone (guard direction `tool`): `block` and `ask` withhold it (nobody can be asked
  while a list is built), `redact` serves the redacted definition, `flag` serves it and reports it.
- With `rug_pull` other than `off`, each definition is compared with its pin (`ToolPins.observe`): the server's
  first listing is pinned, a different definition is held back (`hold`) or served and reported (`flag`), and so
  is a tool that appears after that first listing.
- Notices (`tool_poisoned`, `tool_changed`) are emitted once per server, tool and definition hash.
- A held tool is released without a restart: decisions taken in this process release it at once, decisions taken
  elsewhere (CLI, another replica) are picked up by a poll of the store every `RELEASE_POLL_SECONDS`; then the
  cached list is dropped and every session hears `notifications/tools/list_changed`.
- A store failure while checking pins follows `guardrails.failure_mode`: `closed` withholds the tool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from bastion.guard.actions import Action
from bastion.guard.engine import Guard
from bastion.guard.finding import Finding
from bastion.guard.pins import PinCheck, PinStatus, ToolPin, ToolPins, definition_hash
from bastion.types import Notice, NoticeKind

logger = logging.getLogger("bastion.guard.screen")

RELEASE_POLL_SECONDS: Final = 2.0
"""How often held tools are checked against the store for a decision taken in another process."""

_WITHHOLD: Final = frozenset({Action.BLOCK, Action.ASK})
"""Guard actions on a definition that keep it from clients."""

Emit = Callable[[Notice], Awaitable[None]]
Released = Callable[[list[str]], Awaitable[None]]
"""Called with the servers whose held tools were released: their lists must be fetched again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScreenedTool:
    """The verdict on one tool definition."""

    server: str
    name: str
    """The upstream's tool name."""
    hash: str
    """SHA-256 of the definition's canonical JSON."""
    action: Action
    """The guard's action on the definition (`allow` when nothing was found)."""
    findings: tuple[Finding, ...]
    """What the guard found in it (no matched text)."""
    pin: PinCheck | None
    """How it compares with its pin (None when rug-pull checks are off or failed)."""
    pinned_hash: str = ""
    """The pinned hash it was compared with ("" when new or unchecked)."""
    served: dict[str, Any] | None = None
    """The definition clients get (possibly redacted), or None when withheld."""
    reason: str = ""
    """Why it is withheld: `poisoned`, `held` (rug pull) or `store_error`; "" when served."""

    @property
    def poisoned(self) -> bool:
        return bool(self.findings)

    @property
    def changed(self) -> bool:
        return self.pin in (PinCheck.CHANGED, PinCheck.REJECTED)

    def to_dict(self) -> dict[str, Any]:
        """The report form (scan output, notices): names, hashes, findings; never the definition."""
        return {
            "server": self.server,
            "tool": self.name,
            "hash": self.hash,
            "action": str(self.action),
            "findings": [f.to_dict() for f in self.findings],
            "pin": str(self.pin) if self.pin is not None else None,
            "pinnedHash": self.pinned_hash,
            "withheld": self.served is None,
            "reason": self.reason,
        }


class ToolScreen:
    """Poisoning and rug-pull screening of tool definitions, with the state a running gateway needs."""

    def __init__(
        self,
        guard: Guard,
        pins: ToolPins | None,
        *,
        rug_pull: str = "hold",
        emit: Emit | None = None,
        fail_closed: bool = True,
    ) -> None:
        """Build a screen.

        Args:
            guard: the compiled guardrails (its `tool` direction is used).
            pins: where pins live; None (or `rug_pull="off"`) skips rug-pull checks.
            rug_pull: `hold`, `flag` or `off` (`guardrails.rug_pull`).
            emit: where notices go (`Gateway.emit`); None drops them (scan).
            fail_closed: withhold a tool whose pin cannot be checked (store down).
        """
        self.guard = guard
        self.pins = pins if rug_pull != "off" else None
        self.rug_pull = rug_pull
        self.emit = emit
        self.fail_closed = fail_closed
        self.schemas: dict[tuple[str, str], dict[str, Any]] = {}
        """(server, tool) -> inputSchema of every definition seen, for argument validation."""
        self.held: dict[tuple[str, str], str] = {}
        """(server, tool) -> hash of the definition held back, waiting for an operator."""
        self._matched: dict[tuple[str, str], str] = {}
        self._noticed: set[tuple[str, str, str, str]] = set()
        self._released: Released | None = None
        self._poller: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- screening ---------------------------------------------------------------------------------------------

    async def __call__(self, server: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The catalogue hook: the definitions clients may see, in their original order."""
        served: list[dict[str, Any]] = []
        first = await self._first_listing(server)
        for item in items:
            name = item.get("name")
            if not isinstance(name, str):
                continue  # routing needs a name; a nameless tool can never be called anyway
            verdict = await self.screen_one(server, item, first_listing=first)
            await self._report(verdict)
            if verdict.served is not None:
                served.append(verdict.served)
        if first and self.pins is not None:
            with contextlib.suppress(
                Exception
            ):  # unmarked, the next listing is trusted once more: logged below
                await self.pins.mark_server_pinned(server)
        return served

    async def _first_listing(self, server: str) -> bool:
        """Whether this listing is the server's first (trusted on first use); a store failure says no (held)."""
        if self.pins is None:
            return True
        try:
            return not await self.pins.server_pinned(server)
        except Exception:
            logger.exception("reading whether %s was pinned failed; new tools are held", server)
            return False

    async def screen_one(
        self,
        server: str,
        definition: Mapping[str, Any],
        *,
        record: bool = True,
        first_listing: bool = True,
    ) -> ScreenedTool:
        """Judge one definition: guard findings first, then its pin.

        Args:
            server: upstream server name.
            definition: the tool definition as the upstream listed it.
            record: write pins (False: compare only, as `bastion scan` does without `--pin`).
            first_listing: part of the server's first listing (False: a tool without a pin is held as new).
        """
        name = str(definition.get("name", ""))
        key = (server, name)
        digest = definition_hash(definition)
        schema = definition.get("inputSchema")
        if isinstance(schema, dict):
            self.schemas[key] = schema
        result = self.guard.inspect("tool", definition, server=server, tool=name)
        served: dict[str, Any] | None = (
            result.payload if isinstance(result.payload, dict) else dict(definition)
        )
        reason = ""
        if result.action in _WITHHOLD:
            served, reason = None, "poisoned"
        check: PinCheck | None = None
        pinned = ""
        if self.pins is not None:
            try:
                check, pinned = await self._check_pin(
                    server, definition, digest, record=record, first_listing=first_listing
                )
            except Exception:  # the store failed: fail closed by default (a pin that cannot be checked)
                logger.exception("checking the pin of %s/%s failed", server, name)
                if self.fail_closed and served is not None:
                    served, reason = None, "store_error"
            if check in (PinCheck.CHANGED, PinCheck.REJECTED) and self.rug_pull == "hold":
                if served is not None:
                    served, reason = None, "held"
                self.held[key] = digest
            else:
                self.held.pop(key, None)
        return ScreenedTool(
            server=server,
            name=name,
            hash=digest,
            action=result.action,
            findings=result.findings,
            pin=check,
            pinned_hash=pinned,
            served=served,
            reason=reason,
        )

    async def _check_pin(
        self, server: str, definition: Mapping[str, Any], digest: str, *, record: bool, first_listing: bool
    ) -> tuple[PinCheck, str]:
        assert self.pins is not None
        key = (server, str(definition.get("name", "")))
        if self._matched.get(key) == digest:
            return PinCheck.MATCH, digest  # known good: no store round trip on every refresh
        check, pin = await self.pins.observe(
            server, definition, digest=digest, record=record, first_listing=first_listing
        )
        if check in (PinCheck.NEW, PinCheck.MATCH) and record:
            self._matched[key] = digest
        else:
            self._matched.pop(key, None)
        return check, (pin.hash if check is not PinCheck.NEW else "")

    async def _report(self, verdict: ScreenedTool) -> None:
        if self.emit is None:
            return
        if verdict.findings and self._first("poisoned", verdict):
            await self.emit(
                Notice(
                    kind=NoticeKind.TOOL_POISONED,
                    server=verdict.server,
                    target=verdict.name,
                    severity="critical" if verdict.reason == "poisoned" else "warning",
                    detail={
                        "action": str(verdict.action),
                        "withheld": verdict.reason == "poisoned",
                        "hash": verdict.hash,
                        "findings": [f.to_dict() for f in verdict.findings],
                    },
                )
            )
        if verdict.changed and self._first("changed", verdict):
            await self.emit(
                Notice(
                    kind=NoticeKind.TOOL_CHANGED,
                    server=verdict.server,
                    target=verdict.name,
                    severity="warning",
                    detail={
                        "event": "changed" if verdict.pin is PinCheck.CHANGED else "rejected",
                        "mode": self.rug_pull,
                        "withheld": verdict.reason == "held",
                        "pinnedHash": verdict.pinned_hash,
                        "pendingHash": verdict.hash,
                    },
                )
            )

    def _first(self, kind: str, verdict: ScreenedTool) -> bool:
        key = (kind, verdict.server, verdict.name, verdict.hash)
        if key in self._noticed:
            return False
        self._noticed.add(key)
        return True

    # -- a running gateway -------------------------------------------------------------------------------------

    def bind(self, emit: Emit, released: Released) -> None:
        """Emit notices through `emit`, and call `released(servers)` when held tools of those servers are
        approved (the gateway drops their cached lists and tells clients); the composition root calls this."""
        self.emit = emit
        self._released = released
        if self.pins is not None:
            self.pins.listeners.append(self._on_decision)

    async def start(self) -> None:
        """Start polling the store for decisions taken in another process."""
        self._wake = asyncio.Event()
        self._poller = asyncio.create_task(self._poll(), name="tool-pins-poll")

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller

    def _on_decision(self, event: str, pin: ToolPin) -> None:
        if (pin.server, pin.tool) in self.held:
            self._wake.set()  # decided in this process: check now rather than at the next poll

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RELEASE_POLL_SECONDS):
                    await self._wake.wait()
            self._wake.clear()
            if not self.held:
                continue
            try:
                await self.check_held()
            except Exception:  # a store hiccup must not end the poll; the next round retries
                logger.exception("checking held tools failed")

    async def check_held(self) -> list[tuple[str, str]]:
        """Release every held tool whose pin now allows it; returns the released (server, tool) pairs."""
        assert self.pins is not None
        released: list[tuple[str, str]] = []
        for (server, tool), digest in list(self.held.items()):
            pin = await self.pins.get(server, tool)
            if pin is not None and pin.hash != digest:
                if pin.status is PinStatus.REJECTED and pin.pending_hash == digest:
                    await self._decided("rejected", server, tool, digest)
                continue
            if self.held.get((server, tool)) != digest:
                continue  # re-screened meanwhile
            del self.held[(server, tool)]
            released.append((server, tool))
            await self._decided("approved" if pin is not None else "forgotten", server, tool, digest)
        if released and self._released is not None:
            await self._released(sorted({s for s, _ in released}))
        return released

    async def _decided(self, event: str, server: str, tool: str, digest: str) -> None:
        if self.emit is None or (event, server, tool, digest) in self._noticed:
            return
        self._noticed.add((event, server, tool, digest))
        await self.emit(
            Notice(
                kind=NoticeKind.TOOL_CHANGED,
                server=server,
                target=tool,
                detail={"event": event, "mode": self.rug_pull, "pendingHash": digest},
            )
        )
