"""A Bastion cluster on this machine: N `bastion serve` replicas, one Redis prefix, one PostgreSQL database, nginx.

nginx runs the shipped deploy/nginx/bastion.conf (replica names and the listen port substituted), which hashes
`Mcp-Session-Id` onto the replicas (affinity), plus a second listener that spreads requests round-robin (affinity
deliberately broken). Its access log names the replica that served each request.

Also used by bench/cluster_bench.py (which puts the repository root on `sys.path`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.cluster.services import REDIS_URL, nginx_binary
from tests.peers import ROOT, bastion_env, calc_stdio, free_port

NGINX_SHIPPED = ROOT / "deploy/nginx/bastion.conf"
SHIFTY = ROOT / "tests/web/shifty.py"
SECRET = "cluster-test-secret-0123456789abcdef"
_SHIPPED_SERVER = re.compile(r"^(?P<indent>\s*)server bastion-(?P<n>\d+):8765(?P<rest>.*)$")
_ACCESS = re.compile(
    r'(?P<port>\d+) (?P<method>\S+) (?P<uri>\S+) (?P<status>\d+) "(?P<upstream>[^"]*)" "(?P<session>[^"]*)"'
)
START_SECONDS = 90.0
"""Longest a replica may take to answer /readyz (two cores shared with other test runs)."""


def default_policy() -> dict[str, Any]:
    """Everyone with the `user` role may call every tool; `admin` may too; calc__add is rate-limited."""
    allow_all = {"rules": [{"id": "all-tools", "effect": "allow", "servers": ["*"]}]}
    return {
        "policy": {
            "default": "deny",
            "roles": {"user": allow_all, "admin": allow_all},
            "rate_limits": [
                {
                    "id": "add-per-principal",
                    "per": "principal",
                    "tools": ["calc__add"],
                    "calls": 6,
                    "window_seconds": 3600,
                }
            ],
        }
    }


@dataclass(frozen=True, slots=True)
class Proxied:
    """One request nginx proxied."""

    port: int
    """The nginx port it came in on (`nginx_port`: affinity, `spread_port`: round-robin)."""
    method: str
    status: int
    replica: str
    """The replica that answered (the last one tried)."""
    session: str
    """Its `Mcp-Session-Id` ("" without)."""


@dataclass
class Replica:
    """One `bastion serve` child process."""

    name: str
    port: int
    config: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mcp(self) -> str:
        return f"{self.url}/mcp"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """Replicas, nginx and their files under `workdir`; start with `start()`, always `stop()`."""

    workdir: Path
    prefix: str
    pg_url: str
    replicas: int = 2
    secret: str | None = SECRET
    guardrails: dict[str, Any] = field(default_factory=lambda: {"enabled": False})
    audit_mode: str = "strict"
    extra: dict[str, Any] = field(default_factory=dict)
    members: dict[str, Replica] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    """Principal -> API key (created with `bastion keys create` before the replicas start)."""
    nginx_port: int = 0
    spread_port: int = 0
    _nginx: subprocess.Popen[bytes] | None = None

    # -- files ------------------------------------------------------------------------------------------------

    @property
    def policy_file(self) -> Path:
        # A folder of its own: the replicas watch the policy's folder, and their logs live in `workdir`.
        return self.workdir / "policy" / "policy.yaml"

    def config_for(self, name: str, port: int) -> dict[str, Any]:
        cluster: dict[str, Any] = {"replica_id": name}
        if self.secret:
            cluster["session_secret"] = self.secret
        return {
            "listen": {"host": "127.0.0.1", "port": port},
            "cluster": cluster,
            "state": {"backend": "redis", "url": REDIS_URL, "key_prefix": self.prefix},
            "audit": {"mode": self.audit_mode, "sinks": [{"type": "postgres", "url": self.pg_url}]},
            "auth": {"enabled": True, "api_keys": {"enabled": True}},
            "servers": {
                "calc": calc_stdio(),
                # One shared process per replica: its `rug` must change the definition the catalogue lists
                # (with a process per principal it changes only the caller's own: tests/upstream covers that).
                "shifty": {
                    "transport": "stdio",
                    "command": sys.executable,
                    "args": [str(SHIFTY)],
                    "isolation": "shared",
                },
            },
            "guardrails": self.guardrails,
            "policy_file": str(self.policy_file),
            **self.extra,
        }

    def write_policy(self, policy: dict[str, Any]) -> None:
        """Replace the shared policy file the way editors do (write a new file, rename it over the old one)."""
        self.policy_file.parent.mkdir(exist_ok=True)
        staged = self.policy_file.with_suffix(".new")
        staged.write_text(yaml.safe_dump(policy))
        staged.replace(self.policy_file)

    @property
    def first_config(self) -> Path:
        return next(iter(self.members.values())).config

    # -- lifecycle --------------------------------------------------------------------------------------------

    def start(self, *, principals: dict[str, str] | None = None) -> None:
        """Write configs, mint API keys (principal -> roles), start every replica and nginx, wait until ready."""
        if not self.policy_file.exists():
            self.write_policy(default_policy())
        for n in range(1, self.replicas + 1):
            name, port = f"r{n}", free_port()
            path = self.workdir / f"{name}.yaml"
            path.write_text(yaml.safe_dump(self.config_for(name, port)))
            self.members[name] = Replica(name=name, port=port, config=path, log=self.workdir / f"{name}.log")
        for principal, roles in (principals or {"alice": "user", "bob": "user", "root": "admin"}).items():
            created = self.cli("keys", "create", "--principal", principal, "--roles", roles)
            self.keys[principal] = created.stdout.strip()
        for replica in self.members.values():
            self.launch(replica)
        for replica in self.members.values():
            self.wait_ready(replica)
        self.start_nginx()

    def launch(self, replica: Replica) -> None:
        """Start (or restart) one replica in its own process group, logging to its file."""
        with replica.log.open("ab") as log:
            replica.process = subprocess.Popen(
                [sys.executable, "-m", "bastion.cli", "serve", "--config", str(replica.config)],
                env=bastion_env(),
                cwd=self.workdir,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its stdio upstreams die with it when it is killed
            )

    def wait_ready(self, replica: Replica) -> None:
        deadline = time.monotonic() + START_SECONDS
        with httpx.Client() as http:
            while True:
                process = replica.process
                if process is None or process.poll() is not None:
                    raise RuntimeError(f"{replica.name} exited:\n{self.tail(replica)}")
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{replica.url}/readyz", timeout=5).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{replica.name} not ready after {START_SECONDS}s:\n{self.tail(replica)}"
                    )
                time.sleep(0.1)  # polling a child process: nothing else tells us it is ready

    def tail(self, replica: Replica, chars: int = 4000) -> str:
        return replica.log.read_text(errors="replace")[-chars:] if replica.log.exists() else ""

    def kill(self, name: str) -> None:
        """SIGKILL a replica and its upstream servers (its process group): no drain, no flush, no goodbye."""
        process = self.members[name].process
        assert process is not None
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop(self) -> None:
        if self._nginx is not None and self._nginx.poll() is None:
            self._nginx.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._nginx.wait(10)
            if self._nginx.poll() is None:
                self._nginx.kill()
                self._nginx.wait()
        for replica in self.members.values():
            process = replica.process
            if process is None or process.poll() is not None:
                continue
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    # -- nginx ------------------------------------------------------------------------------------------------

    def nginx_config(self) -> str:
        """The shipped config with this cluster's addresses, inside a complete nginx.conf, plus a spreading port."""
        servers = list(self.members.values())
        lines: list[str] = []
        for line in NGINX_SHIPPED.read_text().splitlines():
            match = _SHIPPED_SERVER.match(line)
            if match is None:
                lines.append(line.replace("listen 8765;", f"listen 127.0.0.1:{self.nginx_port};"))
            elif match.group("n") == "1":  # one line per replica, with the shipped options
                lines += [f"{match.group('indent')}server {r.address}{match.group('rest')}" for r in servers]
        text = "\n".join(lines)
        assert "server bastion-" not in text and f"listen 127.0.0.1:{self.nginx_port};" in text, (
            "unexpected shipped config"
        )
        spread = "\n".join(f"    server {r.address};" for r in servers)
        tmp = self.workdir
        return f"""
worker_processes 1;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  log_format cluster '$server_port $request_method $uri $status "$upstream_addr" "$http_mcp_session_id"';
  access_log {tmp}/nginx-access.log cluster;
  client_body_temp_path {tmp}/nginx-body;
  proxy_temp_path {tmp}/nginx-proxy;
  fastcgi_temp_path {tmp}/nginx-fastcgi;
  uwsgi_temp_path {tmp}/nginx-uwsgi;
  scgi_temp_path {tmp}/nginx-scgi;
{text}
  # Affinity deliberately broken: every request goes to the next replica in turn.
  upstream bastion_spread {{
{spread}
  }}
  server {{
    listen 127.0.0.1:{self.spread_port};
    location / {{
      proxy_pass http://bastion_spread;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_buffering off;
    }}
  }}
}}
"""

    def start_nginx(self) -> None:
        binary = nginx_binary()
        assert binary is not None
        self.nginx_port, self.spread_port = free_port(), free_port()
        conf = self.workdir / "nginx.conf"
        conf.write_text(self.nginx_config())
        pid = self.workdir / "nginx.pid"
        command = [binary, "-p", str(self.workdir), "-c", str(conf)]
        checked = subprocess.run([*command, "-t", "-g", f"pid {pid};"], capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t failed:\n{checked.stderr}")
        with (self.workdir / "nginx-stderr.log").open("ab") as log:
            self._nginx = subprocess.Popen(
                [*command, "-g", f"daemon off; pid {pid};"], stdout=log, stderr=log
            )
        deadline = time.monotonic() + 20
        with httpx.Client() as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{self.nginx_url}/healthz", timeout=2).status_code == 200:
                        return
                if self._nginx.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "nginx did not start: " + (self.workdir / "nginx-error.log").read_text()
                    )
                time.sleep(0.05)  # polling a child process: nothing else tells us it listens

    @property
    def nginx_url(self) -> str:
        return f"http://127.0.0.1:{self.nginx_port}"

    @property
    def spread_url(self) -> str:
        return f"http://127.0.0.1:{self.spread_port}"

    def access_log(self) -> list[Proxied]:
        """Every request nginx proxied so far, oldest first."""
        names = {r.address: r.name for r in self.members.values()}
        rows = []
        path = self.workdir / "nginx-access.log"
        for line in path.read_text().splitlines() if path.exists() else []:
            match = _ACCESS.fullmatch(line)
            if match is None:
                continue
            last = (
                match.group("upstream").split(",")[-1].strip()
            )  # a retried request names every replica tried
            session = match.group("session")
            rows.append(
                Proxied(
                    port=int(match.group("port")),
                    method=match.group("method"),
                    status=int(match.group("status")),
                    replica=names.get(last, last),
                    session="" if session == "-" else session,
                )
            )
        return rows

    # -- the command line -------------------------------------------------------------------------------------

    def cli(
        self, *args: str, config: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`bastion <args> --config <the first replica's config>` (the CLI reaches the cluster through its stores)."""
        path = config or self.first_config
        command = [sys.executable, "-m", "bastion.cli", *args[:2], "--config", str(path), *args[2:]]
        done = subprocess.run(
            command, env=bastion_env(), capture_output=True, text=True, timeout=120, cwd=self.workdir
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done
