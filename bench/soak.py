"""Soak test: many concurrent sessions calling tools through `bastion serve` for a long time, with faults injected
on a schedule, reporting every error as explained (its upstream was just killed or hung) or unexplained, latency,
and the gateway's memory over time.

Upstreams, all real processes on 127.0.0.1: the repo's calc server over stdio (`calc`) and over Streamable HTTP
(`calchttp`), and server-everything over stdio (`everything`, when `make setup` installed it). Faults: every
`--kill-every` seconds one stdio upstream's process is SIGKILLed (calc and everything in turn); every
`--hang-every` seconds the HTTP upstream is SIGSTOPped for `--hang-seconds`, then SIGCONTinued. An error is
explained when it names a faulted server (or calls its tool) and falls inside that fault's window: from the fault
until the gateway reports the server ready again, plus `--margin` seconds.

Every loop is bounded by the deadline; only loopback addresses are used; every child process (the gateway, its
upstreams, the HTTP upstream) is terminated at the end, also on Ctrl-C, and leftovers are reported.

Run: .venv/bin/python bench/soak.py [--sessions 64] [--seconds 600] [--kill-every 60] [--hang-every 90]
                                    [--hang-seconds 8] [--think-ms 20] [--json-out PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import orjson

ROOT: Final = Path(__file__).resolve().parents[1]
PYTHON: Final = sys.executable
EVERYTHING_JS: Final = (
    ROOT / "tests/peers/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
)
NODE22: Final = ROOT / "tests/peers/node/node_modules/.bin/node"
ACCEPT: Final = "application/json, text/event-stream"
VERSION: Final = "2025-11-25"
CALL_TIMEOUT: Final = 30.0
"""Seconds one HTTP request may take on the client side; longer counts as an unexplained `client_timeout`."""
EXPLAINABLE: Final = frozenset({"upstream_unavailable", "upstream_timeout", "upstream_error"})
"""Error reasons a fault can explain (anything else is unexplained, whenever it happens)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(p) for p in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> list[int]:
    out, todo = [], children(pid)
    while todo:
        child = todo.pop()
        out.append(child)
        todo += children(child)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Window:
    """A fault: which server, from when, until when its errors are explained (None: still open)."""

    server: str
    kind: str
    start: float
    end: float | None = None


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    """Seconds per successful call."""
    error_latencies: list[float] = field(default_factory=list)
    calls: int = 0
    ok: int = 0
    explained: Counter[str] = field(default_factory=Counter)
    unexplained: Counter[str] = field(default_factory=Counter)
    unexplained_samples: list[str] = field(default_factory=list)
    faults: list[Window] = field(default_factory=list)
    rss: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since start, MiB) samples of the gateway process."""

    def explains(self, server: str | None, began: float, ended: float, margin: float) -> bool:
        """True when the call [began, ended] overlaps a fault window of `server` (plus the margin)."""
        for window in self.faults:
            if server != window.server or ended < window.start:
                continue
            if window.end is None or began <= window.end + margin:
                return True
        return False


def write_config(workdir: Path, http_url: str, with_everything: bool, guardrails: bool) -> Path:
    health = {"interval_seconds": 2, "timeout_seconds": 2, "failures": 2}
    common = {"timeout_seconds": 5, "connect_timeout_seconds": 10, "health": health}
    servers: dict[str, Any] = {
        "calc": {
            "transport": "stdio",
            "command": PYTHON,
            "args": [str(ROOT / "tests/servers/calc.py"), "stdio", "calc"],
            **common,
        },
        "calchttp": {"transport": "streamable-http", "url": http_url, "protocol": "legacy", **common},
    }
    if with_everything:
        node = str(NODE22) if NODE22.exists() else "node"
        servers["everything"] = {
            "transport": "stdio",
            "command": node,
            "args": [str(EVERYTHING_JS), "stdio"],
            **common,
        }
    config = {
        "servers": servers,
        "guardrails": {"enabled": guardrails},
        "limits": {"max_concurrent_per_session": 16, "shutdown_grace_seconds": 5},
        "state": {"path": str(workdir / "state.db")},
        "audit": {"sinks": [{"type": "sqlite", "path": str(workdir / "audit.db")}]},
    }
    path = workdir / "bastion.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="bastion-soak-"))
        self.stats = Stats()
        self.started = 0.0
        self.deadline = 0.0
        self.gateway: subprocess.Popen[bytes] | None = None
        self.http_upstream: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.known_pids: set[int] = set()

    # -- processes ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        http_port, port = free_port(), free_port()
        log = (self.workdir / "upstream-http.log").open("ab")
        self.http_upstream = subprocess.Popen(
            [PYTHON, str(ROOT / "tests/servers/calc_http.py"), "http", str(http_port), "calchttp"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=ROOT,
        )
        await self._wait_port(http_port)
        with_everything = EVERYTHING_JS.exists() and not self.args.no_everything
        config = write_config(
            self.workdir, f"http://127.0.0.1:{http_port}/mcp", with_everything, self.args.guardrails
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        self.gateway = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "bastion.cli",
                "--log-level",
                "WARNING",
                "serve",
                "--config",
                str(config),
                "--port",
                str(port),
            ],
            env=env,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / "gateway.log").open("ab"),
        )
        self.url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            for _ in range(1200):
                if self.gateway.poll() is not None:
                    raise SystemExit(f"bastion serve exited; see {self.workdir / 'gateway.log'}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("bastion serve did not become ready")
        self.calls = [
            ("calc__add", {"a": 1, "b": 2}),
            ("calc__echo", {"text": "soak"}),
            ("calchttp__add", {"a": 3, "b": 4}),
            ("calchttp__echo", {"text": "soak"}),
        ]
        if with_everything:
            self.calls += [
                ("everything__echo", {"message": "soak"}),
                ("everything__get-sum", {"a": 1, "b": 2}),
            ]
        self.known_pids = {self.gateway.pid, self.http_upstream.pid, *descendants(self.gateway.pid)}

    async def _wait_port(self, port: int) -> None:
        for _ in range(600):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            await asyncio.sleep(0.05)
        raise SystemExit(f"nothing listens on {port}")

    def stop(self) -> list[int]:
        """Terminate everything we started; returns pids still alive afterwards (should be none)."""
        below: list[int] = []
        if self.gateway is not None:
            below = descendants(self.gateway.pid)
            self.known_pids.update(below)
            if self.gateway.poll() is None:
                self.gateway.send_signal(signal.SIGTERM)
                try:
                    self.gateway.wait(30)
                except subprocess.TimeoutExpired:
                    self.gateway.kill()
                    self.gateway.wait(10)
        if self.http_upstream is not None and self.http_upstream.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.http_upstream.pid, signal.SIGCONT)
            self.http_upstream.terminate()
            try:
                self.http_upstream.wait(10)
            except subprocess.TimeoutExpired:
                self.http_upstream.kill()
                self.http_upstream.wait(10)
        for _ in range(100):
            if not any(alive(p) for p in below):
                break
            time.sleep(0.1)
        left = [p for p in self.known_pids if alive(p)]
        for pid in left:  # only processes this script started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return left

    def upstream_child(self, marker: str) -> int | None:
        assert self.gateway is not None
        for pid in children(self.gateway.pid):
            if marker in cmdline(pid):
                return pid
        return None

    # -- sessions ----------------------------------------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() - self.started

    async def session(self, number: int) -> None:
        """One agent: its own HTTP connection (as a real client has), calling tools until the deadline.

        A client per session, not one shared pool: httpx's pool scans every waiting request on each
        assignment, and 64 sessions on one pool made the load generator, not the gateway, the bottleneck."""
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(CALL_TIMEOUT)) as http:
            await self.session_calls(http, number)

    async def session_calls(self, http: httpx.AsyncClient, number: int) -> None:
        rng = random.Random(number)
        sid = await self.initialize(http)
        n = 0
        while time.monotonic() < self.deadline:
            if sid is None:
                await asyncio.sleep(0.5)
                sid = await self.initialize(http)
                continue
            n += 1
            tool, arguments = rng.choice(self.calls)
            message = {
                "jsonrpc": "2.0",
                "id": n,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            }
            began = time.monotonic()
            outcome = await self.call(http, sid, message)
            took = time.monotonic() - began
            self.stats.calls += 1
            if outcome == "ok":
                self.stats.ok += 1
                self.stats.latencies.append(took)
            else:
                self.stats.error_latencies.append(took)
                self.classify(outcome, tool, began - self.started, took)
                if outcome.startswith("session"):
                    sid = None
            if self.args.think_ms:
                await asyncio.sleep(rng.random() * self.args.think_ms / 1000)

    async def initialize(self, http: httpx.AsyncClient) -> str | None:
        params = {
            "protocolVersion": VERSION,
            "capabilities": {},
            "clientInfo": {"name": "soak", "version": "1"},
        }
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": params}
        headers = {"content-type": "application/json", "accept": ACCEPT}
        try:
            response = await http.post(f"{self.url}/mcp", content=orjson.dumps(init), headers=headers)
            sid = response.headers.get("mcp-session-id")
            if response.status_code != 200 or sid is None:
                return None
            done = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            await http.post(
                f"{self.url}/mcp", content=orjson.dumps(done), headers={**headers, "mcp-session-id": sid}
            )
        except httpx.HTTPError:
            return None
        return sid

    async def call(self, http: httpx.AsyncClient, sid: str, message: dict[str, Any]) -> str:
        """ "ok", or `<reason>` / `<reason>@<server>` of the failure."""
        headers = {
            "content-type": "application/json",
            "accept": ACCEPT,
            "mcp-session-id": sid,
            "mcp-protocol-version": VERSION,
        }
        try:
            response = await http.post(f"{self.url}/mcp", content=orjson.dumps(message), headers=headers)
        except httpx.TimeoutException:
            return "client_timeout"
        except httpx.HTTPError as exc:
            return f"http_{type(exc).__name__}"
        if response.status_code == 404:
            return "session_not_found"
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            reply = next(
                (
                    json.loads(line[5:])
                    for line in response.text.splitlines()
                    if line.startswith("data:") and '"id"' in line
                ),
                None,
            )
        else:
            try:
                reply = response.json()
            except ValueError:
                return f"http_{response.status_code}"
        if not isinstance(reply, dict):
            return "no_reply"
        if "result" in reply:
            return "error_result" if reply["result"].get("isError") else "ok"
        data = (reply.get("error") or {}).get("data") or {}
        reason = str(data.get("reason", reply.get("error", {}).get("code")))
        server = data.get("server")
        return f"{reason}@{server}" if server else reason

    def classify(self, outcome: str, tool: str, at: float, took: float) -> None:
        reason, _, server = outcome.partition("@")
        server = server or tool.split("__", 1)[0]
        if reason in EXPLAINABLE and self.stats.explains(server, at, at + took, self.args.margin):
            self.stats.explained[f"{reason}@{server}"] += 1
            return
        self.stats.unexplained[outcome] += 1
        if len(self.stats.unexplained_samples) < 20:
            self.stats.unexplained_samples.append(f"t={at:.1f}s {tool}: {outcome}")

    # -- faults and sampling -----------------------------------------------------------------------------------

    async def upstream(self, http: httpx.AsyncClient, server: str) -> dict[str, Any]:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            found: dict[str, Any] = (await http.get(f"{self.url}/readyz")).json()["upstreams"][server]
            return found
        return {}

    async def ready_again(self, http: httpx.AsyncClient, server: str, *, after_restarts: int) -> None:
        """Until the server has been restarted (a kill) and is then ready and available for `--settle` seconds
        in a row: what a fault sets off (health checks marking it down late, queued requests) is over by then."""
        stable_since: float | None = None
        while time.monotonic() < self.deadline + 30:
            upstream = await self.upstream(http, server)
            good = (
                upstream.get("restarts", 0) > after_restarts
                and upstream.get("state") == "ready"
                and upstream.get("available", True)
            )
            if not good:
                stable_since = None
            elif stable_since is None:
                stable_since = time.monotonic()
            elif time.monotonic() - stable_since >= self.args.settle:
                return
            await asyncio.sleep(0.2)

    async def kill_faults(self, http: httpx.AsyncClient) -> None:
        targets = [("calc", "calc.py")] + (
            [("everything", "server-everything")] if len(self.calls) > 4 else []
        )
        turn = 0
        while time.monotonic() + self.args.kill_every < self.deadline:
            await asyncio.sleep(self.args.kill_every)
            server, marker = targets[turn % len(targets)]
            turn += 1
            pid = self.upstream_child(marker)
            if pid is None:
                continue
            restarts = (await self.upstream(http, server)).get("restarts", 0)
            window = Window(server, "kill", self.now())
            self.stats.faults.append(window)
            self.known_pids.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # the child leads its own group (npx -> node too)
            await self.ready_again(http, server, after_restarts=restarts)
            window.end = self.now()
            new = self.upstream_child(marker)
            if new is not None:
                self.known_pids.add(new)

    async def hang_faults(self, http: httpx.AsyncClient) -> None:
        assert self.http_upstream is not None
        # out of step with the kills, and never past the deadline
        await asyncio.sleep(min(self.args.hang_every / 2, max(0.0, self.deadline - time.monotonic())))
        while time.monotonic() + self.args.hang_seconds < self.deadline:
            window = Window("calchttp", "hang", self.now())
            self.stats.faults.append(window)
            os.kill(self.http_upstream.pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(self.args.hang_seconds)
            finally:
                os.kill(self.http_upstream.pid, signal.SIGCONT)
            await self.ready_again(http, "calchttp", after_restarts=-1)
            window.end = self.now()
            pause = self.args.hang_every - self.args.hang_seconds
            await asyncio.sleep(max(0.0, min(pause, self.deadline - time.monotonic())))

    async def sample(self) -> None:
        assert self.gateway is not None
        while time.monotonic() < self.deadline:
            self.stats.rss.append((self.now(), rss_mib(self.gateway.pid)))
            await asyncio.sleep(self.args.sample_every)

    async def run(self) -> None:
        await self.start()
        async with httpx.AsyncClient(timeout=5) as probe:
            self.started = time.monotonic()
            self.deadline = self.started + self.args.seconds
            self.load_start = loadavg()
            tasks = [asyncio.create_task(self.session(n)) for n in range(self.args.sessions)]
            tasks.append(asyncio.create_task(self.sample()))
            if self.args.kill_every:
                tasks.append(asyncio.create_task(self.kill_faults(probe)))
            if self.args.hang_every:
                tasks.append(asyncio.create_task(self.hang_faults(probe)))
            try:
                await asyncio.wait_for(asyncio.gather(*tasks), self.args.seconds + 120)
            finally:
                for task in tasks:
                    task.cancel()
            assert self.gateway is not None
            self.stats.rss.append((self.now(), rss_mib(self.gateway.pid)))
            self.load_end = loadavg()

    # -- report ------------------------------------------------------------------------------------------------

    def report(self, leftovers: list[int]) -> dict[str, Any]:
        s = self.stats
        lat = sorted(s.latencies)

        def pct(p: float) -> float:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 2) if lat else 0.0

        rss = [round(m, 1) for _t, m in s.rss]
        steady = [m for t, m in s.rss if t >= min(60.0, self.args.seconds / 5)] or rss
        return {
            "sessions": self.args.sessions,
            "seconds": self.args.seconds,
            "calls": s.calls,
            "ok": s.ok,
            "callsPerSecond": round(s.calls / max(1.0, self.args.seconds), 1),
            "explainedErrors": dict(s.explained),
            "unexplainedErrors": dict(s.unexplained),
            "unexplainedSamples": s.unexplained_samples,
            "latencyMs": {
                "p50": pct(0.50),
                "p99": pct(0.99),
                "max": round(lat[-1] * 1000, 1) if lat else 0.0,
            },
            "errorLatencyMsP50": round(statistics.median(s.error_latencies) * 1000, 2)
            if s.error_latencies
            else 0.0,
            "rssMiB": {"start": rss[0] if rss else 0, "end": rss[-1] if rss else 0, "samples": rss},
            "rssSteadyMiB": {"min": round(min(steady), 1), "max": round(max(steady), 1)} if steady else {},
            "faults": [
                {
                    "server": w.server,
                    "kind": w.kind,
                    "at": round(w.start, 1),
                    "recovered": round(w.end, 1) if w.end else None,
                }
                for w in s.faults
            ],
            "loadAverage": {"start": self.load_start, "end": self.load_end},
            "leftoverProcesses": leftovers,
            "workdir": str(self.workdir),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument(
        "--kill-every", type=float, default=60, help="seconds between upstream kills (0: none)"
    )
    parser.add_argument(
        "--hang-every", type=float, default=90, help="seconds between HTTP upstream hangs (0: none)"
    )
    parser.add_argument("--hang-seconds", type=float, default=8)
    parser.add_argument(
        "--margin", type=float, default=3, help="seconds after recovery errors are still explained"
    )
    parser.add_argument("--settle", type=float, default=8, help="seconds of steady health that end a fault")
    parser.add_argument("--think-ms", type=float, default=20, help="random pause after each call, up to this")
    parser.add_argument("--sample-every", type=float, default=10, help="seconds between RSS samples")
    parser.add_argument("--no-everything", action="store_true", help="leave server-everything out")
    parser.add_argument("--guardrails", action="store_true", help="run with the guardrails on")
    parser.add_argument("--json-out", help="also write the report here")
    args = parser.parse_args()
    soak = Soak(args)
    report: dict[str, Any] = {}
    try:
        asyncio.run(soak.run())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        leftovers = soak.stop()
        if soak.started:
            report = soak.report(leftovers)
    if not report:
        return 1
    print(json.dumps(report, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2))
    return 0 if not report["unexplainedErrors"] and not leftovers else 1


if __name__ == "__main__":
    sys.exit(main())
