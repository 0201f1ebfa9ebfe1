"""The proxy benchmark's targets: each one a set of real subprocesses on free 127.0.0.1 ports, owned by a `Launcher`.

Every target fronts the same upstream code (bench/upstream_server.py, official SDK): `direct` is that server over
Streamable HTTP; the proxies put themselves in front of their own copy of it. The launcher starts each child in its
own process group and kills the whole group at the end, so stdio upstreams spawned by a proxy die with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

ROOT: Final = Path(__file__).resolve().parents[1]
UPSTREAM: Final = ROOT / "bench" / "upstream_server.py"
PEERS: Final = ROOT / ".peers"
MCP_PROXY: Final = PEERS / "venv-mcp-proxy" / "bin" / "mcp-proxy"
FASTMCP_PYTHON: Final = PEERS / "venv-fastmcp" / "bin" / "python"
CONTEXTFORGE: Final = PEERS / "venv-contextforge" / "bin" / "mcpgateway"
CONTEXTFORGE_PYTHON: Final = PEERS / "venv-contextforge" / "bin" / "python"
PY_SPY: Final = Path(sys.executable).parent / "py-spy"
"""The sampling profiler behind `--profile` (pinned in the dev extras)."""

START_TIMEOUT: Final = 600.0
"""Default seconds a target may take to accept connections: ContextForge migrates its database and Bastion
compiles its guardrail patterns at start, both slow on a busy 2-core machine."""

ALL_TARGETS: Final = (
    "direct",
    "mcp-proxy",
    "bastion-bare-stdio",
    "bastion-stdio",
    "bastion-bare-http",
    "bastion-http",
    "fastmcp",
    "contextforge",
)
"""The default set: `bastion-bare-*` is Bastion with every optional stage off (transport cost alone), next to
Bastion full on the same upstream transport."""
EXTRA_TARGETS: Final = ()
"""Opt-in targets (none at present)."""


class TargetError(Exception):
    """A target could not be started or configured; the message says why (shown in the report)."""


@dataclass(slots=True)
class Target:
    name: str
    url: str
    """The Streamable HTTP endpoint the load generator POSTs to."""
    description: str
    headers: dict[str, str] = field(default_factory=dict)
    """Credentials the target needs (Bastion's API key, ContextForge's JWT)."""
    tools: dict[str, str] = field(default_factory=lambda: {"echo": "echo", "blob": "blob"})
    """Logical tool name -> the name this target exposes."""
    pid: int | None = None
    """The proxy process whose peak RSS is reported (its children, e.g. a stdio upstream, are not counted)."""
    notes: list[str] = field(default_factory=list)
    principal_headers: list[dict[str, str]] = field(default_factory=list)
    """One credential per principal (`--principals`): throughput session i uses entry i modulo their number."""
    start_seconds: float = 0.0
    """Wall time from spawn to ready (configuration through admin APIs included)."""


def free_port() -> int:
    """A free loopback port (the same recipe as tests.peers.free_port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int | None, field: str = "VmHWM") -> float | None:
    """A memory figure of a live process in MiB from /proc/PID/status: VmHWM (peak resident set) or VmRSS."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def tree_rss_mb(pid: int | None) -> tuple[float | None, int]:
    """Resident memory of a process and all its descendants in MiB (a gateway and the upstream processes it
    spawned, e.g. one per principal), and how many descendants there are."""
    if pid is None:
        return None, 0
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent and child not in tree]
        tree.update(children)
        frontier.extend(children)
    sizes = [rss_mb(p, "VmRSS") for p in tree]
    return sum(s for s in sizes if s is not None), len(tree) - 1


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time a live process (all its threads) has used, from /proc/PID/stat."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14 and 15)


def _child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    # A small, fixed environment: the colleague's shell must not leak settings (DATABASE_URL, proxies) into peers.
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TERM") if k in os.environ}
    base["NO_PROXY"] = "127.0.0.1,localhost"
    return {**base, **(extra or {})}


class Launcher:
    """Owns a scratch directory and every child process; `close()` kills them all (also on Ctrl-C)."""

    def __init__(self, keep: bool = False, start_timeout: float = START_TIMEOUT) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="bastion-bench-"))
        self.keep = keep
        self.start_timeout = start_timeout
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}
        self._lock = threading.Lock()  # targets start in parallel threads; close() must see every child
        self._closed = False

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def spawn(
        self,
        name: str,
        argv: Sequence[str | Path],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        with self._lock, log.open("ab") as out:
            if self._closed:
                raise TargetError("the benchmark is stopping")
            proc = subprocess.Popen(
                [str(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env or _child_env(),
                cwd=cwd or ROOT,
                start_new_session=True,  # its own process group: killpg reaches the stdio upstream it spawns
            )
            self.procs.append(proc)
            self.logs[proc.pid] = log
        return proc

    def log_tail(self, proc: subprocess.Popen[bytes], lines: int = 15) -> str:
        try:
            text = self.logs[proc.pid].read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:]) or "(no output)"

    def wait_port(self, proc: subprocess.Popen[bytes], port: int) -> None:
        """Wait until the child accepts TCP connections on 127.0.0.1:port; fail if it dies or takes too long."""
        timeout = self.start_timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._closed:
                raise TargetError("the benchmark is stopping")
            if (status := _exit_status(proc)) is not None:
                raise TargetError(f"exited with status {status}:\n{self.log_tail(proc)}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
            time.sleep(0.1)
        raise TargetError(f"did not listen on 127.0.0.1:{port} within {timeout:.0f}s:\n{self.log_tail(proc)}")

    def close(self) -> None:
        """SIGTERM every process group, wait, then SIGKILL what is left; reap everything (no zombies)."""
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not strand children
        try:
            with self._lock:
                self._closed = True
            self._kill_all()
        finally:
            signal.signal(signal.SIGINT, previous)
        if not self.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _kill_all(self) -> None:
        # A leader we have not reaped keeps its pid, which is also its group id, so killpg cannot reach anyone
        # else's processes: wait for exits with WNOWAIT and reap only after the last killpg.
        live = [proc for proc in self.procs if proc.returncode is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in live:
            while time.monotonic() < deadline:
                if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    break
                time.sleep(0.05)
        for proc in live:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(
                    proc.pid, signal.SIGKILL
                )  # whatever ignored SIGTERM, and group members that outlived it
        for proc in self.procs:
            proc.wait()
        self.procs.clear()


def _exit_status(proc: subprocess.Popen[bytes]) -> int | None:
    """The child's exit status if it exited, without reaping it (so `close()` can still signal its group safely)."""
    if proc.returncode is not None:
        return proc.returncode
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped meanwhile by close()
        return -1
    return None if info is None else info.si_status


def start_upstream_http(launcher: Launcher, name: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    proc = launcher.spawn(f"upstream-{name}", [sys.executable, UPSTREAM, "http", str(port)])
    launcher.wait_port(proc, port)
    return f"http://127.0.0.1:{port}/mcp", proc


def start_direct(launcher: Launcher) -> Target:
    url, proc = start_upstream_http(launcher, "direct")
    return Target("direct", url, "upstream over Streamable HTTP, no proxy", pid=proc.pid)


def start_fastmcp(launcher: Launcher) -> Target:
    if not FASTMCP_PYTHON.exists():
        raise TargetError(f"{FASTMCP_PYTHON} missing: run scripts/setup-bench-peers.sh")
    upstream, _ = start_upstream_http(launcher, "fastmcp")
    port = free_port()
    argv: list[str | Path] = [FASTMCP_PYTHON, ROOT / "bench" / "fastmcp_proxy.py", upstream, str(port)]
    proc = launcher.spawn("fastmcp", argv)
    launcher.wait_port(proc, port)
    return Target(
        "fastmcp", f"http://127.0.0.1:{port}/mcp", "fastmcp 4.2.3 create_proxy -> upstream HTTP", pid=proc.pid
    )


def start_mcp_proxy(launcher: Launcher) -> Target:
    if not MCP_PROXY.exists():
        raise TargetError(f"{MCP_PROXY} missing: run scripts/setup-bench-peers.sh")
    port = free_port()
    argv = [str(MCP_PROXY), "--port", str(port), "--host", "127.0.0.1", "--log-level", "WARNING", "--"]
    proc = launcher.spawn("mcp-proxy", [*argv, sys.executable, UPSTREAM, "stdio"])
    launcher.wait_port(proc, port)
    return Target(
        "mcp-proxy", f"http://127.0.0.1:{port}/mcp", "mcp-proxy 0.13.0 -> upstream stdio", pid=proc.pid
    )


def bastion_config(
    workdir: Path, name: str, server: dict[str, Any], *, full: bool
) -> tuple[dict[str, Any], list[str]]:
    """Bastion's config with every pipeline stage on (`full`) or none; returns it and the sections Bastion lacks.

    Sections the current `BastionConfig` does not know yet (a stage still being built) are dropped and named, so
    the report says exactly what was measured instead of failing or pretending.
    """
    from bastion.config.model import BastionConfig

    config: dict[str, Any] = {
        "servers": {"up": server},
        "routing": {"namespace": False},
        "state": {"path": str(workdir / f"{name}-state.db")},
        "telemetry": {"metrics": {"enabled": full}},
    }
    if full:
        config["auth"] = {"enabled": True}
        config["policy"] = {
            "default": "deny",
            "roles": {"bench": {"rules": [{"id": "bench-all", "effect": "allow", "servers": ["*"]}]}},
            # A bucket that never runs dry, so the rate-limit stage does its full work on every call.
            "rate_limits": [
                {
                    "id": "bench",
                    "per": "principal",
                    "calls": 10_000_000,
                    "window_seconds": 1,
                    "concurrent": 1000,
                }
            ],
        }
        config["guardrails"] = {}  # the default guardrails: every detector with its default actions
        config["audit"] = {"sinks": [{"type": "sqlite", "path": str(workdir / f"{name}-audit.db")}]}
    else:
        config["audit"] = {"enabled": False}
        config["guardrails"] = {"enabled": False}
    fields = BastionConfig.model_fields
    known = set(fields) | {f.alias for f in fields.values() if f.alias}
    missing = [key for key in config if key not in known]
    return {k: v for k, v in config.items() if k in known}, missing


def _bastion_command() -> list[str]:
    script = Path(sys.executable).parent / "bastion"
    return [str(script)] if script.exists() else [sys.executable, "-m", "bastion.cli"]


def start_bastion(
    launcher: Launcher,
    name: str,
    upstream: str,
    *,
    full: bool = True,
    isolation: str | None = None,
    principals: int = 1,
) -> Target:
    """`bastion serve` in front of the bench upstream; `isolation` sets `servers.up.isolation` (None: the
    transport's default), and `principals` API keys are made (one principal each) when auth is on."""
    if not (ROOT / "src" / "bastion" / "server" / "app.py").exists():
        raise TargetError("src/bastion/server/app.py does not exist yet: `bastion serve` cannot start")
    if upstream == "stdio":
        server: dict[str, Any] = {
            "transport": "stdio",
            "command": sys.executable,
            "args": [str(UPSTREAM), "stdio"],
        }
    else:
        url, _ = start_upstream_http(launcher, name)
        server = {"transport": "streamable-http", "url": url}
    if isolation is not None:
        server["isolation"] = isolation
    config, missing = bastion_config(launcher.workdir, name, server, full=full)
    from bastion.config import parse_config
    from bastion.errors import ConfigError

    try:
        parse_config(config)
    except ConfigError as exc:
        raise TargetError(f"generated config rejected: {exc}") from exc
    path = launcher.workdir / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    headers: dict[str, str] = {}
    principal_headers: list[dict[str, str]] = []
    for index in range(principals if config.get("auth", {}).get("enabled") else 0):
        cmd = [
            *_bastion_command(),
            "keys",
            "create",
            "--config",
            str(path),
            "--principal",
            "bench" if index == 0 else f"bench-{index}",
            "--roles",
            "bench",
        ]
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=60, cwd=launcher.workdir, check=False
        )
        key = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
        if done.returncode != 0 or not key:
            raise TargetError(
                f"`bastion keys create` failed ({done.returncode}): {done.stderr.strip()[-500:]}"
            )
        principal_headers.append({"Authorization": f"Bearer {key}"})
    headers = principal_headers[0] if principal_headers else {}
    port = free_port()
    argv: list[str | Path] = [
        *_bastion_command(),
        "--log-level",
        "WARNING",
        "serve",
        "--config",
        path,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = launcher.spawn(name, argv, cwd=launcher.workdir)
    launcher.wait_port(proc, port)
    stages = (
        "auth(api key)+policy+rate-limit+guardrails+audit(sqlite strict)+metrics"
        if full
        else "no optional stage"
    )
    target = Target(
        name,
        f"http://127.0.0.1:{port}/mcp",
        f"bastion serve [{stages}] -> upstream {upstream}",
        headers=headers,
        pid=proc.pid,
        principal_headers=principal_headers,
    )
    if isolation is not None or principals > 1:
        target.description += f" (isolation {isolation or 'default'}, {principals} principal(s))"
    if missing:
        target.notes.append(
            f"config sections not in BastionConfig yet, so not measured: {', '.join(missing)}"
        )
    return target


def start_contextforge(launcher: Launcher) -> Target:
    """ContextForge on SQLite with its own JWT auth; the upstream is registered through the admin API."""
    if not CONTEXTFORGE.exists():
        raise TargetError(f"{CONTEXTFORGE} missing: run scripts/setup-bench-peers.sh")
    upstream, _ = start_upstream_http(launcher, "contextforge")
    home = launcher.workdir / "contextforge"
    home.mkdir()
    port = free_port()
    secret = secrets.token_urlsafe(48)
    admin = "admin@example.com"
    env = _child_env(
        {
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "DATABASE_URL": f"sqlite:///{home / 'mcp.db'}",
            "JWT_SECRET_KEY": secret,
            "AUTH_ENCRYPTION_SECRET": secrets.token_urlsafe(48),
            "PLATFORM_ADMIN_EMAIL": admin,
            "PLATFORM_ADMIN_PASSWORD": "Bench-" + secrets.token_urlsafe(24),
            "MCPGATEWAY_ADMIN_API_ENABLED": "true",
            "MCPGATEWAY_UI_ENABLED": "false",
            "CACHE_TYPE": "memory",  # no Redis
            "SSRF_ALLOW_LOCALHOST": "true",  # the upstream is on loopback
            "RATE_LIMITING_ENABLED": "false",  # default 100 requests/min per client would cap the benchmark
            "LOG_LEVEL": "ERROR",
        }
    )
    proc = launcher.spawn(
        "contextforge", [str(CONTEXTFORGE), "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=home
    )
    launcher.wait_port(proc, port)
    made = subprocess.run(
        [
            str(CONTEXTFORGE_PYTHON),
            "-m",
            "mcpgateway.utils.create_jwt_token",
            "--username",
            admin,
            "--exp",
            "1440",
            f"--secret={secret}",  # one argument: a token_urlsafe secret may start with "-"
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=home,
        check=False,
    )
    lines = made.stdout.strip().splitlines()
    if made.returncode != 0 or not lines:
        raise TargetError(f"minting a ContextForge token failed: {made.stderr.strip()[-500:]}")
    headers = {"Authorization": f"Bearer {lines[-1].strip()}"}
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=60, trust_env=False) as admin_api:
            gateway = _ok(
                admin_api.post(
                    "/gateways", json={"name": "bench", "url": upstream, "transport": "STREAMABLEHTTP"}
                )
            )
            tools = [t for t in _ok(admin_api.get("/tools")) if t.get("gatewayId") == gateway["id"]]
            names = {t["originalName"]: t["name"] for t in tools}
            if not {"echo", "blob"} <= names.keys():
                raise TargetError(
                    f"ContextForge did not import echo and blob from the upstream: {sorted(names)}"
                )
            body = {"server": {"name": "bench", "associated_tools": [t["id"] for t in tools]}}
            server = _ok(admin_api.post("/servers", json=body))
    except httpx.HTTPError as exc:
        raise TargetError(f"ContextForge admin API failed: {type(exc).__name__}: {exc}") from exc
    return Target(
        "contextforge",
        # The only MCP path its rewrite middleware knows: the `/v1/...` "successor-version" it advertises is a 404.
        f"{base}/servers/{server['id']}/mcp",
        "mcp-contextforge-gateway 1.0.7 (SQLite, JWT auth, rate limiting off) -> upstream HTTP",
        headers=headers,
        tools={"echo": names["echo"], "blob": names["blob"]},
        pid=proc.pid,
    )


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise TargetError(
            f"{response.request.method} {response.request.url.path}: HTTP {response.status_code} {response.text[:300]}"
        )
    return response.json()


def start_target(
    launcher: Launcher, name: str, *, isolation: str | None = None, principals: int = 1
) -> Target:
    """Start one named target (see ALL_TARGETS and EXTRA_TARGETS); `isolation` and `principals` apply to Bastion."""
    if name == "direct":
        return start_direct(launcher)
    if name == "bastion-stdio":
        return start_bastion(launcher, name, "stdio", isolation=isolation, principals=principals)
    if name == "bastion-http":
        return start_bastion(launcher, name, "http", isolation=isolation, principals=principals)
    if name == "bastion-bare-http":
        return start_bastion(launcher, name, "http", full=False, isolation=isolation, principals=principals)
    if name == "bastion-bare-stdio":
        return start_bastion(launcher, name, "stdio", full=False, isolation=isolation, principals=principals)
    if name == "fastmcp":
        return start_fastmcp(launcher)
    if name == "mcp-proxy":
        return start_mcp_proxy(launcher)
    if name == "contextforge":
        return start_contextforge(launcher)
    raise TargetError(f"unknown target {name!r}; choose from {', '.join(ALL_TARGETS + EXTRA_TARGETS)}")
