"""Throughput of one and of two Bastion replicas behind nginx, with Redis state and the audit trail in PostgreSQL.

Each phase starts a fresh cluster (tests/cluster/harness.py: `bastion serve` replicas, the shipped nginx config,
a random Redis prefix, a fresh PostgreSQL database), opens `--sessions` handshake-era sessions through nginx
(affinity on Mcp-Session-Id), and has every session call `calc__echo` back to back for `--seconds`. It reports
calls/s, latency percentiles, the CPU seconds each process group used, and calls per CPU second of the replicas:
on a small machine the load generator, nginx, Redis, PostgreSQL, the upstream servers and the replicas all share
the same cores, so the calls/s ratio between two replicas and one only measures scale-out where cores are left
over, while calls per replica CPU second tells whether a second replica costs anything per call.

Usage: python bench/cluster_bench.py [--sessions 16] [--seconds 20] [--guardrails default|off]
                                    [--audit strict|relaxed] [--json-out]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the cluster harness lives with the tests

from tests.cluster.harness import Cluster  # noqa: E402
from tests.cluster.services import cluster_problem, fresh_database, redis_prefix  # noqa: E402

ACCEPT = "application/json, text/event-stream"
INIT = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "cluster-bench", "version": "1"},
}
TICKS = os.sysconf("SC_CLK_TCK")
DETECTORS_OFF = {
    "enabled": True,
    **{
        name: {"enabled": False}
        for name in ("secrets", "pii", "injection", "poisoning", "arguments", "schema")
    },
}


def cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) of every live process in a process group, from /proc."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the command: state ppid pgrp ... utime(11) stime(12)
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def machine_busy() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat), for how saturated the machine was."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICKS


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


async def open_session(http: httpx.AsyncClient, url: str, key: str) -> str:
    headers = {"x-api-key": key, "content-type": "application/json", "accept": ACCEPT}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT}
    response = await http.post(url, json=init, headers=headers)
    response.raise_for_status()
    session = response.headers["mcp-session-id"]
    headers |= {"mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    done = await http.post(
        url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
    )
    done.raise_for_status()
    return session


async def load(cluster: Cluster, sessions: int, seconds: float, warmup: float) -> dict[str, Any]:
    url = f"{cluster.nginx_url}/mcp"
    key = cluster.keys["alice"]
    limits = httpx.Limits(max_connections=sessions * 2, max_keepalive_connections=sessions * 2)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        ids = [await open_session(http, url, key) for _ in range(sessions)]
        latencies: list[float] = []
        errors = 0
        measuring = False
        deadline = time.monotonic() + warmup + seconds

        async def worker(session: str) -> None:
            nonlocal errors
            headers = {
                "x-api-key": key,
                "content-type": "application/json",
                "accept": ACCEPT,
                "mcp-session-id": session,
                "mcp-protocol-version": "2025-11-25",
            }
            n = 0
            while time.monotonic() < deadline:
                n += 1
                message = {
                    "jsonrpc": "2.0",
                    "id": n,
                    "method": "tools/call",
                    "params": {"name": "calc__echo", "arguments": {"text": f"bench {n}"}},
                }
                started = time.perf_counter()
                response = await http.post(url, json=message, headers=headers)
                elapsed = time.perf_counter() - started
                if not measuring:
                    continue
                if response.status_code == 200 and "result" in response.json():
                    latencies.append(elapsed)
                else:
                    errors += 1

        tasks = [asyncio.create_task(worker(s)) for s in ids]
        await asyncio.sleep(warmup)
        measuring = True
        groups = {r.name: r.process.pid for r in cluster.members.values() if r.process is not None}
        before = {name: cpu_seconds(pgid) for name, pgid in groups.items()}
        client_before, busy_before, started = own_cpu(), machine_busy(), time.monotonic()
        await asyncio.gather(*tasks)
        wall = time.monotonic() - started
        cpu = {name: round(cpu_seconds(pgid) - before[name], 2) for name, pgid in groups.items()}
        client_cpu = round(own_cpu() - client_before, 2)
        busy = round((machine_busy() - busy_before) / wall, 2)
    latencies.sort()
    return {
        "replicas": len(cluster.members),
        "sessions": sessions,
        "seconds": round(wall, 2),
        "calls": len(latencies),
        "errors": errors,
        "calls_per_second": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2) if latencies else None,
        "cpu_seconds": {
            **{f"replica {k} (+ its upstreams)": v for k, v in cpu.items()},
            "load generator": client_cpu,
        },
        "machine_busy_cores": busy,
        # Contention-free capacity: calls per CPU second the replicas (with their upstreams) spent. Equal for one
        # and two replicas means clustering adds no per-call cost, so throughput grows with the cores given.
        "calls_per_replica_cpu_second": round(len(latencies) / max(0.01, sum(cpu.values())), 1),
        "audit": cluster.audit_mode,
    }


def phase(replicas: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    guardrails = {"enabled": True} if args.guardrails == "default" else DETECTORS_OFF
    with fresh_database() as pg_url, redis_prefix() as prefix:
        cluster = Cluster(
            workdir=workdir / f"{replicas}-replicas",
            prefix=prefix,
            pg_url=pg_url,
            replicas=replicas,
            guardrails=guardrails,
            audit_mode=args.audit,
        )
        cluster.workdir.mkdir()
        try:
            cluster.start()
            return asyncio.run(load(cluster, args.sessions, args.seconds, args.warmup))
        finally:
            cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=16, help="concurrent sessions (default 16)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per phase (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds first (default 3)")
    parser.add_argument("--guardrails", choices=("default", "off"), default="default")
    parser.add_argument(
        "--audit", choices=("strict", "relaxed"), default="strict", help="audit mode (PostgreSQL)"
    )
    parser.add_argument(
        "--json-out", action="store_true", help="also write bench/results/cluster-<time>.json"
    )
    args = parser.parse_args()
    if (problem := cluster_problem()) is not None:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        results = [phase(n, args, Path(tmp)) for n in (1, 2)]
    one, two = results
    ratio = two["calls_per_second"] / one["calls_per_second"] if one["calls_per_second"] else float("nan")
    report = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "guardrails": args.guardrails,
        "results": results,
        "ratio_two_over_one": round(ratio, 2),
    }
    for r in results:
        print(
            f"{r['replicas']} replica(s), {r['sessions']} sessions: {r['calls_per_second']} calls/s "
            f"(p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, {r['errors']} errors); machine busy "
            f"{r['machine_busy_cores']} of {os.cpu_count()} cores; cpu seconds {r['cpu_seconds']}; "
            f"{r['calls_per_replica_cpu_second']} calls per replica CPU second"
        )
    print(f"two replicas / one replica = {report['ratio_two_over_one']} on {os.cpu_count()} CPUs")
    if args.json_out:
        out = ROOT / "bench/results" / f"cluster-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(report, indent=2))
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
