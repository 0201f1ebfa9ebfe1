"""Proxy benchmark: what Bastion adds on top of a direct MCP call, next to FastMCP's proxy, mcp-proxy and ContextForge.

A raw JSON-RPC client on httpx (no SDK, so the client costs the same everywhere) runs, per target and per round:
sequential latency (one session, `--calls` tools/call after a warm-up, p50/p99) and throughput (`--sessions`
concurrent sessions, each its own connection, for `--seconds`), for `echo` with a 100-byte text and for `blob(64)`.
Targets alternate within a round (A B C D E, A B C D E, ...) so machine noise spreads over all of them; the report
is the median across rounds. Every child process is killed at the end, also on Ctrl-C.

Run: .venv/bin/python bench/proxy_bench.py [--calls 2000] [--seconds 10] [--sessions 16] [--rounds 3]
                                           [--targets direct,bastion-http,...] [--json-out [PATH]]
                                           [--isolation shared|session|principal] [--principals N]
                                           [--profile LABEL [--profile-targets bastion-http,...]]

Isolation cost: `--isolation` sets the upstream's `servers.<name>.isolation` for the Bastion targets and
`--principals N` spreads the throughput sessions over N API keys (one principal each). Each throughput run then
reports the memory of the target with every process it spawned (`tree RSS`) and how many there are, measured while
all sessions are open: with `principal` on stdio that is one upstream process per principal, with `session` on
HTTP one upstream MCP session per client session.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import orjson

from proxy_report import fmt, report
from targets import (
    ALL_TARGETS,
    EXTRA_TARGETS,
    PY_SPY,
    ROOT,
    START_TIMEOUT,
    Launcher,
    Target,
    TargetError,
    cpu_seconds,
    start_target,
    tree_rss_mb,
)

ECHO_TEXT: Final = ("bastion-bench-" * 8)[:100]
"""The 100-byte echo argument."""
CALL_TIMEOUT: Final = 30.0
"""Seconds one HTTP request may take before the measurement counts as failed."""
ACCEPT: Final = "application/json, text/event-stream"
PROTOCOL_VERSION: Final = "2025-11-25"


class BenchError(Exception):
    """A call failed (HTTP error, JSON-RPC error, wrong result); the case is reported as failed."""


class McpSession:
    """One MCP session on its own HTTP connection: initialize, Mcp-Session-Id, then tools/call."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self.client = httpx.AsyncClient(timeout=CALL_TIMEOUT, limits=limits, trust_env=False)
        self.client.headers.update({"Accept": ACCEPT, "Content-Type": "application/json", **headers})
        self.next_id = 0

    async def open(self) -> None:
        params = {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "proxy-bench", "version": "1"},
        }
        result = await self.request("initialize", params)
        self.client.headers["MCP-Protocol-Version"] = str(result.get("protocolVersion", PROTOCOL_VERSION))
        response = await self.client.post(
            self.url, content=b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
        )
        if response.status_code not in (200, 202, 204):
            raise BenchError(f"notifications/initialized: HTTP {response.status_code} {response.text[:200]}")

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        request_id = self.next_id
        body = orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        response = await self.client.post(self.url, content=body)
        if response.status_code != 200:
            raise BenchError(f"{method}: HTTP {response.status_code} {response.text[:300]}")
        if method == "initialize" and (session_id := response.headers.get("mcp-session-id")):
            self.client.headers["Mcp-Session-Id"] = session_id
        message = _find_reply(response, request_id)
        if "error" in message:
            raise BenchError(f"{method}: JSON-RPC error {message['error']}")
        result: dict[str, Any] = message["result"]
        return result

    async def call_tool(self, name: str, arguments: dict[str, Any], expect_len: int) -> None:
        result = await self.request("tools/call", {"name": name, "arguments": arguments})
        content = result.get("content") or [{}]
        if result.get("isError") or len(content[0].get("text", "")) != expect_len:
            raise BenchError(f"tools/call {name}: unexpected result {str(result)[:300]}")

    async def aclose(self) -> None:
        if "Mcp-Session-Id" in self.client.headers:
            try:
                await self.client.delete(self.url, timeout=5)
            except httpx.HTTPError:
                pass  # ending the session is a courtesy; the target may not support DELETE
        await self.client.aclose()


def _find_reply(response: httpx.Response, request_id: int) -> dict[str, Any]:
    """The JSON-RPC reply to `request_id` from a JSON body or an SSE stream (other events are skipped)."""
    content_type = response.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        messages = orjson.loads(response.content)
        for message in messages if isinstance(messages, list) else [messages]:
            if message.get("id") == request_id:
                return dict(message)
    elif content_type.startswith("text/event-stream"):
        data: list[bytes] = []
        for raw in [*response.content.split(b"\n"), b""]:
            line = raw.rstrip(b"\r")
            if line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            elif not line and data:
                message = orjson.loads(b"\n".join(data))
                data = []
                if (
                    isinstance(message, dict)
                    and message.get("id") == request_id
                    and ("result" in message or "error" in message)
                ):
                    return message
    raise BenchError(f"no reply to id {request_id} in a {content_type!r} response: {response.text[:300]}")


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    tool: str
    arguments: dict[str, Any]
    expect_len: int
    calls: int
    seconds: float


@dataclass(slots=True)
class Sample:
    """One target x case x round."""

    p50_ms: float | None = None
    p99_ms: float | None = None
    calls_per_s: float | None = None
    cpu_ms_per_call: float | None = None
    """CPU time of the target process per call in the throughput run (a stdio upstream it spawns not included)."""
    timed_calls: int = 0
    """Sequential calls timed: fewer than asked when the time budget ran out."""
    tree_rss_mb: float | None = None
    """Resident memory of the target and every process it spawned, while the throughput sessions were open."""
    children: int = 0
    """Processes the target had spawned then (stdio upstreams: one per principal with `isolation: principal`)."""
    error: str | None = None


async def sequential(target: Target, case: Case, warmup: int, budget: float) -> tuple[float, float, int]:
    """p50 and p99 in ms, and the number of timed calls: `case.calls`, fewer if `budget` seconds ran out first."""
    session = McpSession(target.url, target.headers)
    deadline = time.perf_counter() + budget
    try:
        await session.open()
        tool = target.tools[case.tool]
        warm_until = time.perf_counter() + budget / 5  # a slow target must not spend the budget warming up
        for _ in range(warmup):
            await session.call_tool(tool, case.arguments, case.expect_len)
            if time.perf_counter() > warm_until:
                break
        timings: list[int] = []
        for _ in range(case.calls):
            if timings and time.perf_counter() > deadline:
                break
            start = time.perf_counter_ns()
            await session.call_tool(tool, case.arguments, case.expect_len)
            timings.append(time.perf_counter_ns() - start)
    finally:
        await session.aclose()
    timings.sort()
    return _percentile(timings, 50) / 1e6, _percentile(timings, 99) / 1e6, len(timings)


def _percentile(sorted_ns: list[int], pct: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, round(pct / 100 * len(sorted_ns) + 0.5 - 1e-9))
    return float(sorted_ns[min(rank, len(sorted_ns)) - 1])


async def throughput(
    target: Target, case: Case, sessions: int, sample: Sample | None = None, profile: Path | None = None
) -> tuple[float, float | None]:
    """Calls per second over `sessions` concurrent sessions, and the target process's CPU ms per call meanwhile
    (CPU time is what a busy shared machine distorts least). Sessions take turns over the target's principals."""
    credentials = target.principal_headers or [target.headers]
    opened = [McpSession(target.url, credentials[i % len(credentials)]) for i in range(sessions)]
    tool = target.tools[case.tool]
    try:
        await asyncio.gather(*(s.open() for s in opened))
        for s in opened:  # warm every connection and session before the clock starts
            await s.call_tool(tool, case.arguments, case.expect_len)
        if sample is not None:  # every scope's upstream process or session exists now
            sample.tree_rss_mb, sample.children = tree_rss_mb(target.pid)
        counts = [0] * sessions
        spy = _start_profiler(target, profile, case.seconds)
        cpu_before = cpu_seconds(target.pid)
        start = time.perf_counter()
        deadline = start + case.seconds

        async def worker(index: int, session: McpSession) -> None:
            while time.perf_counter() < deadline:
                await session.call_tool(tool, case.arguments, case.expect_len)
                counts[index] += 1

        await asyncio.wait_for(
            asyncio.gather(*(worker(i, s) for i, s in enumerate(opened))), case.seconds + 2 * CALL_TIMEOUT
        )
        elapsed = time.perf_counter() - start
        cpu_after, calls = cpu_seconds(target.pid), sum(counts)
        _finish_profiler(spy)
        cpu_ms = None
        if cpu_before is not None and cpu_after is not None and calls:
            cpu_ms = (cpu_after - cpu_before) * 1000 / calls
        return calls / elapsed, cpu_ms
    finally:
        await asyncio.gather(*(s.aclose() for s in opened), return_exceptions=True)


def _start_profiler(target: Target, path: Path | None, seconds: float) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the target for the throughput run, writing a flame graph to `path` (None: no profile)."""
    if path is None or target.pid is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(PY_SPY), "record", "--pid", str(target.pid), "--output", str(path), "--format", "flamegraph"]
    argv += ["--duration", str(max(1, round(seconds))), "--rate", "250", "--nonblocking", "--subprocesses"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.3)  # let it attach before the clock starts
    return proc


def _finish_profiler(spy: subprocess.Popen[bytes] | None) -> None:
    if spy is None:
        return
    try:
        _, err = spy.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, err = spy.communicate()
    if spy.returncode != 0:
        print(f"    py-spy failed ({spy.returncode}): {err.decode(errors='replace').strip()[-300:]}")


def _profile_path(args: argparse.Namespace, target: Target, case: Case) -> Path | None:
    """bench/results/flame-proxy-<target>-<case>-<label>.svg for the targets picked by --profile."""
    if not args.profile or target.name not in args.profile_targets:
        return None
    case_name = case.name.replace("(", "").replace(")", "")
    return ROOT / "bench" / "results" / f"flame-proxy-{target.name}-{case_name}-{args.profile}.svg"


async def measure(target: Target, case: Case, args: argparse.Namespace) -> Sample:
    sample = Sample()
    phase = "sequential"
    try:
        sample.p50_ms, sample.p99_ms, sample.timed_calls = await sequential(
            target, case, args.warmup, args.seq_budget
        )
        phase = "throughput"
        sample.calls_per_s, sample.cpu_ms_per_call = await throughput(
            target, case, args.sessions, sample, _profile_path(args, target, case)
        )
    except (BenchError, httpx.HTTPError, TimeoutError, KeyError, ValueError) as exc:
        sample.error = f"{phase} run failed: {type(exc).__name__}: {str(exc) or repr(exc)}"[:500]
    return sample


def _conditions() -> dict[str, Any]:
    cpu = "?"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_start": os.getloadavg(),
    }


def start_targets(
    launcher: Launcher, names: list[str], *, isolation: str | None = None, principals: int = 1
) -> tuple[list[Target], dict[str, str]]:
    """Start every target at once (ContextForge's migrations and Bastion's pattern compilation are slow);
    return those that came up, in the order asked, and why the others did not."""

    def start(name: str) -> Target:
        t0 = time.monotonic()
        target = start_target(launcher, name, isolation=isolation, principals=principals)
        target.start_seconds = time.monotonic() - t0
        print(f"  {name} ready in {target.start_seconds:.1f}s", flush=True)
        return target

    pool = ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="start")
    try:
        futures = {name: pool.submit(start, name) for name in names}
        targets: list[Target] = []
        failed: dict[str, str] = {}
        for name, future in futures.items():
            try:
                targets.append(future.result())
            except (TargetError, OSError, subprocess.SubprocessError) as exc:
                failed[name] = str(exc)
                print(f"  {name}: could not start: {exc}", flush=True)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # on Ctrl-C, close() stops the threads' children
    return targets, failed


async def run(
    args: argparse.Namespace, conditions: dict[str, Any], targets: list[Target], failed: dict[str, str]
) -> dict[str, Any]:
    cases = [Case("echo", "echo", {"text": ECHO_TEXT}, len(ECHO_TEXT), args.calls, args.seconds)]
    if args.blob_kb > 0:
        blob_calls = max(50, args.calls // 4)
        cases.append(
            Case(
                f"blob({args.blob_kb})",
                "blob",
                {"kb": args.blob_kb},
                args.blob_kb * 1024,
                blob_calls,
                max(1.0, args.seconds / 2),
            )
        )
    samples: dict[tuple[str, str], list[Sample]] = {}
    for round_no in range(1, args.rounds + 1):
        for target in targets:  # A B C D E, then again: noise lands on every target alike
            for case in cases:
                sample = await measure(target, case, args)
                samples.setdefault((target.name, case.name), []).append(sample)
                status = sample.error or (
                    f"p50 {fmt(sample.p50_ms, '.2f')} ms, p99 {fmt(sample.p99_ms, '.2f')} ms,"
                    f" {fmt(sample.calls_per_s, '.0f')} calls/s, {fmt(sample.cpu_ms_per_call, '.2f')} CPU ms/call,"
                    f" tree RSS {fmt(sample.tree_rss_mb, '.0f')} MiB over {sample.children} child process(es)"
                )
                print(
                    f"  round {round_no}/{args.rounds} {target.name:<18}{case.name:<10}{status}", flush=True
                )
    conditions["loadavg_end"] = os.getloadavg()
    summary = report(targets, cases, samples, failed, args)
    print(
        f"\nrun conditions: load average {conditions['loadavg_start']} at start, {conditions['loadavg_end']} at end (other work on the machine shows here)"
    )
    summary["conditions"] = conditions
    summary["options"] = {k: v for k, v in vars(args).items() if k != "json_out"}
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--calls", type=int, default=2000, help="sequential calls per target and round (default 2000)"
    )
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls before the sequential run")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="duration of the throughput run (default 10)"
    )
    parser.add_argument(
        "--seq-budget",
        type=float,
        default=60.0,
        help="seconds one sequential run may take; a slower target is timed on fewer calls (default 60)",
    )
    parser.add_argument("--sessions", type=int, default=16, help="concurrent sessions in the throughput run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds over all targets; the median is reported"
    )
    parser.add_argument("--blob-kb", type=int, default=64, help="size of the blob case in KiB (0: skip it)")
    parser.add_argument(
        "--targets",
        default=",".join(ALL_TARGETS),
        help=f"comma-separated, from {', '.join(ALL_TARGETS + EXTRA_TARGETS)}",
    )
    parser.add_argument(
        "--json-out",
        nargs="?",
        const="auto",
        help="write the results as JSON (default path: bench/results/proxy-bench-<time>.json)",
    )
    parser.add_argument(
        "--start-timeout", type=float, default=START_TIMEOUT, help="seconds each target may take to start"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (configs, logs)")
    parser.add_argument(
        "--isolation",
        choices=("shared", "session", "principal"),
        default=None,
        help="servers.<name>.isolation of the Bastion targets (default: the transport's own default)",
    )
    parser.add_argument(
        "--principals",
        type=int,
        default=1,
        help="API keys (principals) the throughput sessions take turns over",
    )
    parser.add_argument(
        "--profile",
        metavar="LABEL",
        default=None,
        help="record a py-spy flame graph of each throughput run into "
        "bench/results/flame-proxy-<target>-<case>-LABEL.svg (CPU per call then includes py-spy's sampling)",
    )
    parser.add_argument(
        "--profile-targets",
        default="bastion-http,bastion-stdio",
        help="targets --profile samples (default bastion-http,bastion-stdio)",
    )
    args = parser.parse_args(argv)
    args.profile_targets = {t.strip() for t in args.profile_targets.split(",") if t.strip()}
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if "direct" not in args.targets:
        args.targets.insert(0, "direct")  # every ratio is to direct
    for name in ("calls", "sessions", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


def _run_loop(main: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)  # a cheaper client loop leaves more of the 2 cores to the targets


def _skip_sniffio_import() -> None:
    """httpcore imports sniffio on every request, and anyio 4.16 no longer installs it: each failed import walks
    sys.path. A None entry in sys.modules makes that import fail at once, so the client's CPU goes to the calls."""
    try:
        import sniffio  # noqa: F401
    except ImportError:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through the launcher, which kills every child


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _skip_sniffio_import()
    for sig in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: a shell's `&` starts us with it ignored
        signal.signal(sig, _stop)
    with Launcher(keep=args.keep, start_timeout=args.start_timeout) as launcher:
        if args.keep:
            print(f"scratch directory: {launcher.workdir}")
        conditions = _conditions()
        print(
            f"proxy bench: {conditions['cpus']} CPUs ({conditions['cpu']}), Python {conditions['python']},"
            f" load average {conditions['loadavg_start']}; starting {', '.join(args.targets)}",
            flush=True,
        )
        try:
            targets, failed = start_targets(
                launcher, args.targets, isolation=args.isolation, principals=args.principals
            )
            summary = _run_loop(run(args, conditions, targets, failed))
        except KeyboardInterrupt:
            print("\ninterrupted: stopping every target", file=sys.stderr)
            return 130
    if args.json_out:
        path = Path(args.json_out)
        if args.json_out == "auto":
            path = ROOT / "bench" / "results" / f"proxy-bench-{dt.datetime.now():%Y%m%d-%H%M%S}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=2, default=str))
        print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
