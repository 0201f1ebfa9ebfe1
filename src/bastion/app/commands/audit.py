"""`bastion audit tail | search | export | verify | prune`: read, check and maintain the audit trail.

Every subcommand takes `--config FILE` (its `audit:` section) and `--sink NAME` (default: the first sink).
Exit codes: 0 success, 1 verification failed (tampering or a gap found), 2 bad arguments or config, 3 a store
the command needs (an audit sink's database, the state store holding the witness) could not be reached: one
line names it, without credentials.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final, TextIO

import anyio
import orjson

from bastion.audit.chain import AnchorKey
from bastion.audit.config import sink_name
from bastion.audit.escape import printable
from bastion.audit.event import EXCHANGE_KIND, AuditEvent
from bastion.audit.keys import audit_key, public_key
from bastion.audit.query import format_time, make_query, open_reader, parse_time
from bastion.audit.reach import StoreUnreachable, reaching, safe_location
from bastion.audit.signing import Ed25519Key, KeyRing, signing_key
from bastion.audit.sinks import AuditReader
from bastion.audit.verify import describe, verify
from bastion.audit.witness import NAMESPACE as WITNESS_NAMESPACE
from bastion.audit.witness import build_witnesses
from bastion.config.model import BastionConfig
from bastion.errors import ConfigError
from bastion.state import open_state_store

UNREACHABLE: Final = 3
"""Exit code when a sink or the state store cannot be reached (1 stays "the trail failed verification")."""
FOLLOW_POLL_SECONDS: Final = 0.5
"""How often `tail -f` looks for new events."""
EXPORT_PAGE: Final = 1000
CSV_COLUMNS: Final = (
    "time",
    "event_id",
    "replica",
    "seq",
    "kind",
    "principal",
    "roles",
    "auth_method",
    "key_id",
    "issuer",
    "subject",
    "token_digest",
    "client_name",
    "client_version",
    "transport",
    "remote",
    "server",
    "method",
    "target",
    "outcome",
    "rule",
    "error_code",
    "error_reason",
    "is_error",
    "result_bytes",
    "arguments_bytes",
    "arguments_truncated",
    "latency_ms",
    "upstream_ms",
    "gateway_ms",
    "trace_id",
    "arguments",
    "findings",
    "detail",
    "hash",
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `audit tail|search|export|verify|prune` to the `bastion` command line."""
    audit = subparsers.add_parser("audit", help="read, export, verify and prune the audit trail")
    commands = audit.add_subparsers(dest="audit_command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = commands.add_parser(name, help=help)
        p.add_argument("--config", required=True, help="bastion.yaml (its `audit:` section)")
        p.add_argument("--sink", default=None, help="sink name (default: the first configured)")
        p.set_defaults(handler=run_audit)
        return p

    tail = command("tail", "print the latest events (and follow new ones with -f)")
    tail.add_argument("-n", type=int, default=20, help="how many events (default 20)")
    tail.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    search = command("search", "find events by principal, server, tool, decision and time")
    _filters(search)
    search.add_argument("--limit", type=int, default=100)
    search.add_argument("--json", action="store_true", help="one JSON object per line")
    export = command("export", "write matching events, oldest first, as JSON Lines or CSV")
    _filters(export)
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("-o", "--output", default="-", help="file to write (default: stdout)")
    check = command("verify", "check every hash chain; names the first bad event")
    check.add_argument("--all-sinks", action="store_true", help="verify every configured sink")
    check.add_argument(
        "--public-key",
        action="append",
        help="Ed25519 public key (PEM) to check signatures without the secret; repeat for several replicas' keys",
    )
    check.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="accept unsigned prune anchors and witness heads, and signed chains without checkpoints",
    )
    check.add_argument("--json", action="store_true")
    prune = command("prune", "delete old events, leaving (signed) prune anchors")
    prune.add_argument("--older-than", type=float, help="days (default: audit.retention_days)")
    prune.add_argument("--before", help="a time: ISO 8601, epoch seconds, or a duration back from now (30d)")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--principal")
    p.add_argument("--server")
    p.add_argument("--tool", help="namespaced (calc__add) or upstream-local name")
    p.add_argument("--decision", help="allow, deny, error, flag, redact, cancelled")
    p.add_argument("--kind", help="exchange, or a notice kind (session_start, auth_failure, ...)")
    p.add_argument("--session")
    p.add_argument("--since", help="ISO 8601, epoch seconds, or a duration back from now (15m, 24h, 7d)")
    p.add_argument("--until", help="same forms as --since")


def _load(path: str) -> BastionConfig:
    from bastion.config import load_config

    config: BastionConfig = load_config(path)
    return config


def run_audit(args: argparse.Namespace) -> int:
    """Handler of `bastion audit ...`."""
    try:
        config = _load(args.config)
        if args.sink is not None and args.sink not in [sink_name(s) for s in config.audit.sinks]:
            raise ConfigError(f"no audit sink named {args.sink}", path="audit.sinks")
        action: Callable[[argparse.Namespace, BastionConfig], Coroutine[Any, Any, int]] = _ACTIONS[
            args.audit_command
        ]
        result: int = anyio.run(action, args, config)
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StoreUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return UNREACHABLE
    except KeyboardInterrupt:
        return 130
    return result


def _query_of(args: argparse.Namespace, *, limit: int, offset: int = 0, order: str = "desc") -> Any:
    return make_query(
        principal=args.principal,
        server=args.server,
        tool=args.tool,
        decision=args.decision,
        kind=args.kind,
        session_id=args.session,
        since=parse_time(args.since) if args.since else None,
        until=parse_time(args.until) if args.until else None,
        limit=limit,
        offset=offset,
        order="asc" if order == "asc" else "desc",
    )


def line_of(event: AuditEvent) -> str:
    """One human-readable line per event, with every control and bidi character escaped (see `escape.py`)."""
    return printable(_raw_line(event))


def _raw_line(event: AuditEvent) -> str:
    when = format_time(event.time)
    who = event.principal or "-"
    if event.kind == EXCHANGE_KIND:
        name = f"{event.server}__{event.target}" if event.server and event.target else event.target or "-"
        code = f" code={event.error_code}" if event.error_code is not None else ""
        rule = f" rule={event.rule}" if event.rule else ""
        return (
            f"{when} {event.outcome:<9} {who} {event.method} {name} {event.latency_ms:.1f}ms"
            f"{code}{rule} id={event.event_id}"
        )
    facts = orjson.dumps(event.detail).decode() if event.detail else ""
    server = f" server={event.server}" if event.server else ""
    return f"{when} {event.severity:<9} {event.kind} {who}{server} {facts} id={event.event_id}".rstrip()


def _print(events: list[AuditEvent], as_json: bool, out: TextIO) -> None:
    for event in events:
        out.write((orjson.dumps(event.to_dict()).decode() if as_json else line_of(event)) + "\n")
    out.flush()


async def _tail(args: argparse.Namespace, config: BastionConfig) -> int:
    async with open_reader(config.audit, sink=args.sink) as reader:
        events, cursor = await reader.tail(max(0, args.n))
        _print(events, args.json, sys.stdout)
        while args.follow:
            await anyio.sleep(FOLLOW_POLL_SECONDS)
            events, cursor = await reader.read_after(cursor)
            _print(events, args.json, sys.stdout)
    return 0


async def _search(args: argparse.Namespace, config: BastionConfig) -> int:
    async with open_reader(config.audit, sink=args.sink) as reader:
        events = await reader.search(_query_of(args, limit=args.limit))
    _print(events, args.json, sys.stdout)
    return 0


def csv_row(event: AuditEvent) -> list[Any]:
    """One CSV row in `CSV_COLUMNS` order (nested values as JSON)."""
    data = event.to_dict()
    data["time"] = format_time(event.time)
    data["roles"] = ";".join(event.roles)
    data["arguments"] = orjson.dumps(event.arguments).decode() if event.arguments is not None else ""
    data["findings"] = orjson.dumps([f for d in event.decisions for f in d.get("findings", ())]).decode()
    data["detail"] = orjson.dumps(event.detail).decode() if event.detail else ""
    return ["" if data.get(c) is None else data.get(c) for c in CSV_COLUMNS]


async def _export(args: argparse.Namespace, config: BastionConfig) -> int:
    async with open_reader(config.audit, sink=args.sink) as reader:
        if args.output == "-":
            await _export_to(reader, args, sys.stdout)
            return 0
        out = await anyio.to_thread.run_sync(_open_output, args.output)
        try:
            await _export_to(reader, args, out)
        finally:
            out.close()
    return 0


def _open_output(path: str) -> TextIO:
    return Path(path).open("w", encoding="utf-8", newline="")


async def _export_to(reader: AuditReader, args: argparse.Namespace, out: TextIO) -> None:
    writer = csv.writer(out) if args.format == "csv" else None
    if writer is not None:
        writer.writerow(CSV_COLUMNS)
    offset = 0
    while True:
        page = await reader.search(_query_of(args, limit=EXPORT_PAGE, offset=offset, order="asc"))
        for event in page:
            if writer is not None:
                writer.writerow(csv_row(event))
            else:
                out.write(orjson.dumps(event.to_dict()).decode() + "\n")
        if len(page) < EXPORT_PAGE:
            break
        offset += len(page)
    out.flush()


async def _verify(args: argparse.Namespace, config: BastionConfig) -> int:
    key: AnchorKey | None
    if args.public_key:
        keys = [Ed25519Key.from_public_pem(await anyio.Path(p).read_bytes()) for p in args.public_key]
        key = keys[0] if len(keys) == 1 else KeyRing(keys)
    else:
        key = signing_key(config.audit) or public_key(config.audit, config.state)
    audit = config.audit
    names = [sink_name(s) for s in audit.sinks] if args.all_sinks else [args.sink]
    ok = True
    async with contextlib.AsyncExitStack() as stack:
        store = None
        if config.state.backend == "redis" or config.state.path != ":memory:":
            # An in-memory state store lives in the gateway's process only: nothing to compare with here.
            url = (config.state.url or "") if config.state.backend == "redis" else ""
            where = f"the state store ({safe_location(url) if url else config.state.path})"
            async with reaching(where, url):
                store = await stack.enter_async_context(open_state_store(config.state))
                await store.get_record(WITNESS_NAMESPACE, "-")  # Redis connects on first use: reach it now
        witnesses = build_witnesses(audit.witnesses, store, readable_only=True)
        for name in names:
            async with (
                open_reader(audit, sink=name) as reader,
                reaching(f"audit sink {name or reader.name} or the state store (connection lost)"),
            ):
                report = await verify(
                    reader,
                    key=key,
                    witnesses=witnesses,
                    checkpoint_gap=audit.checkpoint_every + audit.batch_size,
                    allow_unsigned=args.allow_unsigned,
                )
            ok = ok and report.ok
            if args.json:
                print(orjson.dumps(report.to_dict()).decode())
            else:
                print("\n".join(describe(report)))
    return 0 if ok else 1


async def _prune(args: argparse.Namespace, config: BastionConfig) -> int:
    if args.before:
        before = parse_time(args.before)
    elif args.older_than is not None or config.audit.retention_days is not None:
        days = args.older_than if args.older_than is not None else config.audit.retention_days
        before = time.time() - float(days or 0) * 86400
    else:
        raise ValueError("give --older-than DAYS or --before TIME, or set audit.retention_days")
    async with open_reader(config.audit, sink=args.sink) as reader:
        anchors = await reader.prune(before, audit_key(config.audit, config.state, create=False))
    for anchor in anchors:
        signed = "signed" if anchor.signature else "unsigned"
        print(f"{reader.name}: chain {anchor.replica}: pruned up to seq {anchor.seq} ({signed} anchor)")
    if not anchors:
        print(f"{reader.name}: nothing older than {format_time(before)}")
    return 0


_ACTIONS: Final = {"tail": _tail, "search": _search, "export": _export, "verify": _verify, "prune": _prune}
