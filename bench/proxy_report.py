"""The proxy benchmark's report: one table per case, and issue #18's targets as ratios of one run.

Every figure is the median over rounds; ratios are taken between targets measured in the same run (alternating
rounds on the same machine), never against figures of another run. The reference for Bastion's costs is mcp-proxy,
a bare proxy without security; its upstream is stdio, so `bastion-stdio` is the like-for-like comparison and
`bastion-http` (an HTTP upstream) is reported against it too, marked as a cross-transport comparison.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any, Final

from targets import Target, rss_mb

REFERENCE: Final = "mcp-proxy"
"""The bare proxy Bastion's costs are compared with (issue #18)."""
FULL_TARGETS: Final = {"bastion-stdio": "stdio", "bastion-http": "http"}
"""Bastion with every stage on, by upstream transport."""
CPU_RATIO_MAX: Final = {"echo": 1.0, "blob": 1.3}
"""Proxy CPU per call of Bastion full over mcp-proxy's, at most (100 B echo; 64 KB text)."""
ADDED_P50_SLACK_MS: Final = 0.3
"""Bastion full's added p50 may exceed mcp-proxy's by this much (milliseconds)."""
THROUGHPUT_MIN: Final = {"echo": 0.85, "blob": 0.7}
"""16-session throughput of Bastion full as a share of direct, at least."""
PEAK_RSS_MAX_MB: Final = 80.0
"""Peak resident memory of the Bastion process with 16 sessions, below (MiB)."""


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


COLUMNS: Final = (
    ("target", "<18"),
    ("p50 ms", ">9"),
    ("p99 ms", ">9"),
    ("+p50 ms", ">9"),
    ("calls/s", ">9"),
    ("x direct", ">10"),
    ("CPU ms/call", ">13"),
    ("RSS MB", ">8"),
    ("peak MB", ">9"),
)
"""The table: latency, added p50 vs direct, throughput, its ratio to direct, CPU per call, RSS now and at peak."""


def _row(cells: list[str]) -> str:
    return "".join(format(cell, spec) for cell, (_, spec) in zip(cells, COLUMNS, strict=True))


def _summarise(runs: list[Any], direct: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {
        "p50_ms": _median([s.p50_ms for s in runs]),
        "p99_ms": _median([s.p99_ms for s in runs]),
        "calls_per_s": _median([s.calls_per_s for s in runs]),
        "cpu_ms_per_call": _median([s.cpu_ms_per_call for s in runs]),
        "errors": [s.error for s in runs if s.error],
        "rounds": [
            {
                "p50_ms": s.p50_ms,
                "p99_ms": s.p99_ms,
                "timed_calls": s.timed_calls,
                "calls_per_s": s.calls_per_s,
                "cpu_ms_per_call": s.cpu_ms_per_call,
                "tree_rss_mb": s.tree_rss_mb,
                "children": s.children,
                "error": s.error,
            }
            for s in runs
        ],
    }
    p50, base_p50 = row["p50_ms"], (direct or row).get("p50_ms")
    rate, base_rate = row["calls_per_s"], (direct or row).get("calls_per_s")
    row["added_p50_ms"] = p50 - base_p50 if p50 is not None and base_p50 is not None else None
    row["ratio_to_direct"] = rate / base_rate if rate and base_rate else None
    return row


def report(
    targets: list[Target],
    cases: list[Any],
    samples: dict[tuple[str, str], list[Any]],
    failed: dict[str, str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Print one table per case and return the summary for --json-out."""
    summary: dict[str, Any] = {"cases": {}}
    for case in cases:
        direct = _summarise(samples.get(("direct", case.name), []), {})
        rows = {t.name: _summarise(samples.get((t.name, case.name), []), direct) for t in targets}
        print(
            f"\n== {case.name}: p50/p99 of {case.calls} sequential calls; calls/s of {args.sessions} sessions"
            f" for {case.seconds:g}s; median of {args.rounds} round(s)"
        )
        print(_row([name for name, _ in COLUMNS]))
        for target in targets:
            row = rows[target.name]
            print(
                _row(
                    [
                        target.name,
                        fmt(row["p50_ms"], ".2f"),
                        fmt(row["p99_ms"], ".2f"),
                        fmt(row["added_p50_ms"], "+.2f"),
                        fmt(row["calls_per_s"], ".0f"),
                        fmt(row["ratio_to_direct"], ".2f"),
                        fmt(row["cpu_ms_per_call"], ".2f"),
                        fmt(rss_mb(target.pid, "VmRSS"), ".0f"),
                        fmt(rss_mb(target.pid), ".0f"),
                    ]
                )
            )
            short = [
                r["timed_calls"]
                for r in row["rounds"]
                if r["p50_ms"] is not None and r["timed_calls"] < case.calls
            ]
            if short:
                print(
                    f"    note: only {min(short)}-{max(short)} sequential calls fit in --seq-budget {args.seq_budget:g}s"
                )
            for error in dict.fromkeys(row["errors"]):
                print(f"    error: {error}")
        summary["cases"][case.name] = rows
    for name, reason in failed.items():
        print(f"\n{name}: NOT MEASURED, could not start: {reason}")
    print("\ntargets (RSS is the proxy process alone; a stdio upstream it spawns is not counted):")
    for target in targets:
        print(f"  {target.name:<18}{target.description} (ready in {target.start_seconds:.1f}s)")
        for note in target.notes:
            print(f"  {'':<18}note: {note}")
    summary["targets"] = {
        t.name: {
            "description": t.description,
            "url": t.url,
            "peak_rss_mb": rss_mb(t.pid),
            "rss_mb_at_end": rss_mb(t.pid, "VmRSS"),
            "start_seconds": t.start_seconds,
            "notes": t.notes,
        }
        for t in targets
    }
    summary["failed"] = failed
    summary["verdict"] = verdict(summary["cases"], summary["targets"])
    return summary


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _case_kind(name: str) -> str:
    return "blob" if name.startswith("blob") else "echo"


def verdict(cases: dict[str, dict[str, Any]], targets: dict[str, Any]) -> dict[str, Any]:
    """Issue #18's targets for each Bastion full target, printed as one line per check with its figures."""
    out: dict[str, Any] = {}
    for name, transport in FULL_TARGETS.items():
        if name not in targets:
            continue
        checks: dict[str, Any] = {}
        for case_name, rows in cases.items():
            kind = _case_kind(case_name)
            row, ref = rows.get(name, {}), rows.get(REFERENCE, {})
            cpu = _ratio(row.get("cpu_ms_per_call"), ref.get("cpu_ms_per_call"))
            checks[f"cpu_ratio_{kind}"] = {"value": cpu, "max": CPU_RATIO_MAX[kind]}
            added, ref_added = row.get("added_p50_ms"), ref.get("added_p50_ms")
            gap = added - ref_added if added is not None and ref_added is not None else None
            checks[f"added_p50_gap_ms_{kind}"] = {"value": gap, "max": ADDED_P50_SLACK_MS}
            checks[f"throughput_x_direct_{kind}"] = {
                "value": row.get("ratio_to_direct"),
                "min": THROUGHPUT_MIN[kind],
            }
        checks["peak_rss_mb"] = {"value": targets[name]["peak_rss_mb"], "below": PEAK_RSS_MAX_MB}
        for check in checks.values():
            value = check["value"]
            if value is None:
                check["pass"] = None
            elif "max" in check:
                check["pass"] = value <= check["max"]
            elif "min" in check:
                check["pass"] = value >= check["min"]
            else:
                check["pass"] = value < check["below"]
        out[name] = checks
        same = "same upstream transport" if transport == "stdio" else "mcp-proxy's upstream is stdio"
        print(f"\n{name} vs issue #18 targets (reference {REFERENCE}; {same}):")
        for label, check in checks.items():
            bound = next(f"{k} {check[k]:g}" for k in ("max", "min", "below") if k in check)
            mark = {True: "PASS", False: "MISS", None: "n/a (not measured)"}[check["pass"]]
            print(f"  {label:<28}{fmt(check['value'], '.2f'):>8}   ({bound})  {mark}")
    return out
