"""`bastion tools list | diff | approve | reject | forget` (tool pins) and `bastion scan` (tool definitions).

The pins live in the configured state store, so these commands act on a running gateway's pins (SQLite file or
Redis); a gateway picks up a decision within seconds and tells its clients the tool list changed.

Exit status: 0 done, 1 nothing to do (no such pin, nothing pending) or, for `scan`, something found; 2 invalid
config or a server that could not be scanned.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import anyio

from bastion.app.commands.offline import cli_user, record_offline
from bastion.audit.admin import pin_notice
from bastion.config.model import BastionConfig
from bastion.errors import BastionError
from bastion.guard.pins import ToolPin, ToolPins, diff
from bastion.state import open_state_store


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `tools ...` and `scan` to the `bastion` command line."""
    tools = subparsers.add_parser("tools", help="review pinned tool definitions (rug-pull defence)")
    commands = tools.add_subparsers(dest="tools_command", required=True)
    listing = commands.add_parser("list", help="every pinned tool and its state")
    listing.add_argument("--config", required=True)
    listing.add_argument("--server", help="only this server")
    listing.add_argument("--held", action="store_true", help="only tools waiting for a decision")
    listing.add_argument("--format", choices=("table", "json"), default="table")
    listing.set_defaults(handler=run_tools)
    for name, text in (
        ("diff", "show the pinned and the pending definition of a tool as a unified diff"),
        ("approve", "accept the pending definition of a tool (it becomes the pin and is released)"),
        ("reject", "refuse the pending definition of a tool (it stays held)"),
        ("forget", "drop a tool's pin (the next definition seen is pinned afresh)"),
    ):
        command = commands.add_parser(name, help=text)
        command.add_argument("--config", required=True)
        command.add_argument("server", help="server name as in the config")
        command.add_argument("tool", help="the server's own tool name (not namespaced)")
        if name in ("approve", "reject"):
            command.add_argument(
                "--by", default=cli_user(), help="who decides (recorded; default: your login)"
            )
        if name == "approve":
            command.add_argument(
                "--hash", help="approve only if this is still the pending hash (from `diff`)"
            )
        command.set_defaults(handler=run_tools)

    scan = subparsers.add_parser(
        "scan", help="check every server's tool definitions for poisoning and changes (exit 1 when found)"
    )
    scan.add_argument("--config", required=True)
    scan.add_argument("--server", action="append", default=[], help="scan only this server (repeatable)")
    scan.add_argument("--format", choices=("table", "json"), default="table")
    scan.add_argument("--pin", action="store_true", help="pin definitions seen for the first time")
    scan.add_argument("--no-pins", action="store_true", help="do not compare with pins (no state store)")
    scan.add_argument("--verbose", action="store_true", help="list clean tools too")
    scan.add_argument(
        "--labels", action="store_true", help="also suggest flow labels (policy.flow.labels) for every tool"
    )
    scan.set_defaults(handler=run_scan)


def _load(path: str) -> BastionConfig:
    from bastion.config import load_config

    return load_config(path)  # ConfigError is turned into exit status 2 by `bastion.cli.main`


def run_tools(args: argparse.Namespace) -> int:
    """Handler of `bastion tools ...`."""
    config = _load(args.config)
    result: int = anyio.run(_tools, args, config)
    return result


async def _tools(args: argparse.Namespace, config: BastionConfig) -> int:
    async with open_state_store(config.state) as store:
        pins = ToolPins(store)
        command = args.tools_command
        if command == "list":
            listed = await pins.list_pins(args.server, held_only=args.held)
            print(_pins_json(listed) if args.format == "json" else _pins_table(listed), end="")
            return 0
        if command == "forget":
            if await pins.forget(args.server, args.tool):
                print(f"forgot the pin of {args.server}/{args.tool}")
                return await _audited(args, "forgotten", "")
            return _nothing(f"no pin for {args.server}/{args.tool}")
        pin = await pins.get(args.server, args.tool)
        if pin is None:
            return _nothing(f"no pin for {args.server}/{args.tool}")
        if not pin.pending_hash:
            return _nothing(f"{args.server}/{args.tool} has no pending definition (pinned {pin.hash[:12]})")
        if command == "diff":
            print(f"# {args.server}/{args.tool}: {pin.status}, pending {pin.pending_hash}")
            print(diff(pin), end="")
            return 0
        if command == "approve":
            approved = await pins.approve(args.server, args.tool, by=args.by, pending_hash=args.hash)
            if approved is None:
                return _nothing(f"the pending definition of {args.server}/{args.tool} is not {args.hash}")
            print(f"approved {args.server}/{args.tool}: pinned {approved.hash}")
            return await _audited(args, "approved", approved.hash)
        await pins.reject(args.server, args.tool, by=args.by)
        print(f"rejected {args.server}/{args.tool}: pending {pin.pending_hash[:12]} stays held")
        return await _audited(args, "rejected", pin.pending_hash)


async def _audited(args: argparse.Namespace, decision: str, digest: str) -> int:
    """Record the decision in the audit trail: 0, or 1 (and why, on stderr) when it could not be recorded."""
    by = getattr(args, "by", None) or cli_user()  # `forget` has no --by
    notice = pin_notice(decision, args.server, args.tool, by=by, via="cli", pending_hash=digest)
    try:
        await record_offline(args.config, notice)
    except BastionError as exc:
        print(f"error: the audit trail could not record this: {exc}", file=sys.stderr)
        return 1
    return 0


def _nothing(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch)) if epoch else "-"


def _pins_table(pins: list[ToolPin]) -> str:
    if not pins:
        return "no pinned tools\n"
    rows = [("SERVER", "TOOL", "STATUS", "PINNED", "PENDING", "SINCE (UTC)")]
    for pin in pins:
        since = pin.changed_at if pin.held else pin.pinned_at
        rows.append(
            (pin.server, pin.tool, str(pin.status), pin.hash[:12], pin.pending_hash[:12] or "-", _when(since))
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() + "\n" for row in rows)


def _pins_json(pins: list[ToolPin]) -> str:
    listed: list[dict[str, Any]] = [p.summary() for p in pins]
    return json.dumps(listed, indent=2) + "\n"


def run_scan(args: argparse.Namespace) -> int:
    """Handler of `bastion scan`."""
    config = _load(args.config)
    result: int = anyio.run(_scan, args, config)
    return result


async def _scan(args: argparse.Namespace, config: BastionConfig) -> int:
    from bastion.app.commands.scan import exit_status, render_json, render_table, scan

    if args.no_pins:
        results = await scan(config, store=None, servers=args.server)
    else:
        async with open_state_store(config.state) as store:
            results = await scan(config, store=store, servers=args.server, pin=args.pin)
    if args.labels:
        return _with_labels(args, config, results)
    if args.format == "json":
        print(render_json(results))
    else:
        print(render_table(results, verbose=args.verbose), end="")
    return exit_status(results)


def _with_labels(args: argparse.Namespace, config: BastionConfig, results: list[Any]) -> int:
    """The scan report plus suggested flow labels (from the served definition, or the name of a withheld one)."""
    from bastion.app.commands.scan import exit_status, render_json, render_table
    from bastion.policy.labels import render_suggestions, suggestions

    scanned = [(r.server, t.served or {"name": t.name}) for r in results for t in r.tools]
    entries = suggestions(scanned, config.servers)
    if args.format == "json":
        report = json.loads(render_json(results))
        report["labels"] = entries
        print(json.dumps(report, indent=2))
    else:
        print(render_table(results, verbose=args.verbose) + render_suggestions(entries), end="")
    return exit_status(results)
