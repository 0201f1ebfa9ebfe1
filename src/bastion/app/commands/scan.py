"""`bastion scan`: connect to every configured server once, fetch its tool definitions, and judge them.

No HTTP listener and no client sessions: each upstream gets its own `UpstreamConnection` (the same transports,
handshake and paging as the gateway), every tool definition goes through the same `ToolScreen` as in the gateway
(the guard's `tool` direction, then the pins), and the report says what a gateway would withhold or flag.

Exit status (for CI): 0 clean, 1 something was found (a poisoned or suspicious definition, or one that differs
from its pin), 2 the config is invalid or a server could not be reached or listed.

Rules:
- Pins are only compared by default; `--pin` records first-seen definitions (trust on first use from a scan).
  Changed definitions are never approved by a scan.
- Servers are scanned concurrently, each bounded by its `connect_timeout_seconds` and `timeout_seconds`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bastion.config.model import BastionConfig
from bastion.errors import BastionError
from bastion.guard.engine import Guard
from bastion.guard.pins import PinCheck, ToolPins
from bastion.guard.screen import ScreenedTool, ToolScreen
from bastion.guard.setup import compiled_guard
from bastion.routing.catalog import Catalog
from bastion.state.base import RecordStore
from bastion.upstream.config import ServerConfig
from bastion.upstream.connection import State, UpstreamConnection
from bastion.upstream.factory import transport_factory

EXIT_CLEAN: Final = 0
EXIT_FOUND: Final = 1
EXIT_ERROR: Final = 2


@dataclass(slots=True, kw_only=True)
class ServerScan:
    """What one server's scan found."""

    server: str
    error: str = ""
    """Why the server could not be scanned ("" when it was)."""
    tools: list[ScreenedTool] = field(default_factory=list)

    @property
    def suspicious(self) -> list[ScreenedTool]:
        """Definitions with findings, or that differ from their pin."""
        return [t for t in self.tools if t.findings or t.changed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "error": self.error,
            "tools": [t.to_dict() for t in self.tools],
        }


def exit_status(results: Sequence[ServerScan]) -> int:
    """2 when a server failed, else 1 when anything suspicious was found, else 0."""
    if any(r.error for r in results):
        return EXIT_ERROR
    return EXIT_FOUND if any(r.suspicious for r in results) else EXIT_CLEAN


async def scan(
    config: BastionConfig,
    *,
    store: RecordStore | None,
    servers: Sequence[str] = (),
    pin: bool = False,
    guard: Guard | None = None,
) -> list[ServerScan]:
    """Scan the enabled servers (or only `servers`), in config order.

    Args:
        config: the loaded `bastion.yaml`.
        store: where pins live (None: no pin comparison).
        servers: names to scan (default: every enabled server); an unknown name is reported as an error.
        pin: record first-seen definitions as pins.
        guard: a compiled guard (default: `Guard(config.guardrails)`).
    """
    guard = guard if guard is not None else compiled_guard(config.guardrails)
    rug_pull = config.guardrails.rug_pull
    pins = ToolPins(store) if store is not None and rug_pull != "off" else None
    screen = ToolScreen(
        guard, pins, rug_pull=rug_pull, fail_closed=config.guardrails.failure_mode == "closed"
    )
    names = list(servers) or [n for n, s in config.servers.items() if s.enabled]
    jobs = []
    for name in names:
        server = config.servers.get(name)
        jobs.append(_scan_one(name, server, screen, pin) if server is not None else _unknown(name))
    return list(await asyncio.gather(*jobs))


async def _unknown(name: str) -> ServerScan:
    return ServerScan(server=name, error="no such server in the config")


async def _scan_one(name: str, server: ServerConfig, screen: ToolScreen, pin: bool) -> ServerScan:
    settled = asyncio.Event()

    async def on_state(conn: UpstreamConnection) -> None:
        if conn.state in (State.READY, State.DOWN):
            settled.set()  # connected, or the first attempt failed: either way stop waiting

    conn = UpstreamConnection(name, server, transport_factory(name, server), on_state=on_state)
    try:
        await conn.start()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(server.connect_timeout_seconds):
                await settled.wait()
        if conn.state is not State.READY:
            return ServerScan(server=name, error=conn.last_error or "did not connect in time")
        try:
            items = await Catalog({name: conn}).upstream_list(name, "tools/list")
        except BastionError as exc:
            return ServerScan(server=name, error=exc.message)
        tools = [
            await screen.screen_one(name, item, record=pin)
            for item in items
            if isinstance(item.get("name"), str)
        ]
        return ServerScan(server=name, tools=tools)
    finally:
        await conn.aclose()


# -- output ------------------------------------------------------------------------------------------------------


def _status(tool: ScreenedTool) -> str:
    if tool.findings and tool.served is None:
        return "POISONED"
    if tool.pin in (PinCheck.CHANGED, PinCheck.REJECTED):
        return "CHANGED" if tool.pin is PinCheck.CHANGED else "REJECTED"
    if tool.findings:
        return "SUSPICIOUS"
    return "ok"


def _finding_text(tool: ScreenedTool) -> str:
    parts = [f"{f.detector}/{f.type} ({f.severity}) at {f.path} -> {f.action}" for f in tool.findings]
    if tool.pin in (PinCheck.CHANGED, PinCheck.REJECTED):
        parts.append(f"definition {tool.hash[:12]} differs from pin {tool.pinned_hash[:12]}")
    return "; ".join(parts)


def render_table(results: Sequence[ServerScan], *, verbose: bool = False) -> str:
    """A human-readable report: one row per suspicious tool (every tool with `verbose`), then a summary."""
    rows = [("SERVER", "TOOL", "STATUS", "PIN", "FINDINGS")]
    for result in results:
        if result.error:
            rows.append((result.server, "-", "ERROR", "-", result.error))
            continue
        for tool in result.tools:
            if verbose or tool.findings or tool.changed:
                rows.append(
                    (result.server, tool.name, _status(tool), str(tool.pin or "-"), _finding_text(tool))
                )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] for row in rows
    ]
    scanned = sum(len(r.tools) for r in results)
    found = sum(len(r.suspicious) for r in results)
    failed = sum(1 for r in results if r.error)
    summary = f"{scanned} tools on {len(results) - failed} servers scanned: {found} suspicious"
    if failed:
        summary += f", {failed} servers failed"
    if len(rows) == 1:
        return summary + "\n"
    return "\n".join([*lines, "", summary]) + "\n"


def render_json(results: Sequence[ServerScan]) -> str:
    """The machine-readable report (no definitions, no matched text)."""
    return json.dumps(
        {
            "status": exit_status(results),
            "servers": [r.to_dict() for r in results],
            "suspicious": sum(len(r.suspicious) for r in results),
        },
        indent=2,
    )
