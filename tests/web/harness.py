"""A whole Bastion (runtime, pipeline, audit, guardrails, dashboard) for dashboard tests, plus login helpers.

Upstreams: `calc` and `shifty` run in memory (official-SDK servers in this process) for fast tests, or as stdio
subprocesses for end-to-end tests. Two more upstreams carry secrets in their configuration (env, args, headers)
and never connect; tests grep every response for those secrets.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import uvicorn
from mcp import Client

from bastion.app.guardrails import Guardrails, guard_contribution
from bastion.app.http import build_http_app
from bastion.app.runtime import Runtime, build_runtime
from bastion.auth.apikeys import ApiKeyStore
from bastion.auth.principal import Principal
from bastion.config.loader import parse_config
from bastion.core.contribution import Contribution
from bastion.guard.config import GuardrailsConfig
from bastion.guard.engine import Guard
from bastion.pipeline.chain import Pipeline
from bastion.testing import client_transport
from bastion.transports.memory import MemoryClientTransport
from bastion.upstream.connection import State, UpstreamConnection
from bastion.web.wiring import Dashboard
from tests.peers import PYTHON
from tests.servers import calc
from tests.web import shifty

SECRET_ENV = "env-" + secrets.token_hex(12)
SECRET_ARG = "arg-" + secrets.token_hex(12)
SECRET_HEADER = "hdr-" + secrets.token_hex(12)
SECRET_URL = "url-" + secrets.token_hex(12)
GITHUB_TOKEN = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"
"""Looks like a GitHub token to the secrets detector: redacted by default, `ask` on calc's echo."""
HOST = "127.0.0.1:8765"
ORIGIN = f"http://{HOST}"
AGENT = Principal(name="agent-1", roles=frozenset({"agent"}), method="api_key")

GUARDRAILS: dict[str, Any] = {
    "overrides": [{"servers": ["calc"], "tools": ["echo"], "actions": {"secrets": "ask"}}],
}
"""Default guardrails (secrets redacted, rug pulls held), but a secret sent to calc's echo needs approval."""

POLICY: dict[str, Any] = {
    "principals": {"ops-lead": ["admin"]},
    "roles": {
        "agent": {
            "rules": [{"id": "agent-tools", "effect": "allow", "servers": ["calc", "notes", "shifty"]}]
        },
        "admin": {"description": "operators", "rules": []},
    },
}


def config_data(tmp_path: Path, *, stdio: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The test config: memory placeholders and two secret-bearing upstreams, or only the given stdio servers
    (a gateway waits at start for every upstream, so e2e tests leave out the two that never connect)."""
    memory = {"transport": "stdio", "command": "in-memory", "connect_timeout_seconds": 10}
    servers: dict[str, Any] = stdio or {
        "calc": memory,
        "notes": memory,
        "shifty": memory,
        "vault": {
            "transport": "stdio",
            "command": str(tmp_path / "no-such-upstream"),
            "args": ["--token", SECRET_ARG],
            "env": {"VAULT_TOKEN": SECRET_ENV},
            "connect_timeout_seconds": 1,
        },
        "remote": {
            "transport": "streamable-http",
            "url": f"http://127.0.0.1:9/mcp?key={SECRET_URL}",
            "headers": {"Authorization": f"Bearer {SECRET_HEADER}"},
            "connect_timeout_seconds": 1,
        },
    }
    return {
        "servers": servers,
        "auth": {"enabled": True},
        "state": {"path": str(tmp_path / "state.db")},
        "audit": {"sinks": [{"type": "sqlite", "path": str(tmp_path / "audit.db")}]},
        "guardrails": {"enabled": False},  # built by `add_guardrails` with a fast-compiling matcher
        "policy": POLICY,
        "telemetry": {"metrics": {"enabled": False}},
    }


@dataclass
class Stack:
    """A built runtime and its ASGI app, with an admin and an agent API key."""

    runtime: Runtime
    app: Any
    admin_key: str
    agent_key: str
    keys: list[str] = field(default_factory=list)
    """Every full API key created in the test (none may appear in a later response)."""

    @property
    def dashboard(self) -> Dashboard:
        dashboard = self.runtime.dashboard
        assert dashboard is not None
        return dashboard

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url=f"http://{HOST}", **kwargs
        )

    @contextlib.asynccontextmanager
    async def agent(self) -> AsyncIterator[Client]:
        async with Client(client_transport(self.runtime.gateway, principal=AGENT), mode="legacy") as client:
            yield client


def add_guardrails(runtime: Runtime) -> None:
    """Wire guardrails as `build_runtime` does, but with the RE2 matcher (Hyperscan takes minutes to compile
    the default detectors on a loaded test machine)."""
    config = GuardrailsConfig.model_validate(GUARDRAILS)
    guardrails = Guardrails.from_config(config, runtime.store, guard=Guard(config, backend="re2"))
    gateway = runtime.gateway
    stages = list(gateway.pipeline.stages)
    # Where the root puts it: before the list filter, which stays last (first on the way back).
    at = next((i for i, s in enumerate(stages) if s.name == "list-filter"), len(stages))
    gateway.pipeline = Pipeline([*stages[:at], guardrails.stage, *stages[at:]])
    gateway.use(
        Contribution(listing_stages=guardrails.listing_stages(gateway.emit)),
        guard_contribution(guardrails, gateway),
    )
    runtime.guardrails = guardrails


def use_memory(runtime: Runtime, name: str, server: Any) -> None:
    """Connect upstream `name` to an in-process SDK server instead of its configured transport."""
    gateway = runtime.gateway
    gateway.upstreams[name] = UpstreamConnection(
        name,
        runtime.config.servers[name],
        lambda: MemoryClientTransport(server),
        on_notification=gateway.ups.on_notice,
        on_state=gateway.ups.on_state,
    )


async def wait_ready(runtime: Runtime, names: list[str], timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        for name in names:
            await runtime.gateway.upstreams[name].wait_ready(timeout)
            assert runtime.gateway.upstreams[name].state is State.READY


async def make_keys(runtime: Runtime) -> tuple[str, str]:
    store = ApiKeyStore(runtime.store)
    admin, _ = await store.create("root", ["admin"])
    agent, _ = await store.create(AGENT.name, ["agent"])
    return admin, agent


@contextlib.asynccontextmanager
async def memory_stack(
    tmp_path: Path, *, tweak: Callable[[dict[str, Any]], None] | None = None
) -> AsyncIterator[Stack]:
    """A started runtime with in-memory upstreams and the full HTTP app (driven over ASGI, no socket)."""
    data = config_data(tmp_path)
    if tweak is not None:
        tweak(data)
    runtime = build_runtime(parse_config(data))
    add_guardrails(runtime)
    use_memory(runtime, "calc", calc.build())
    use_memory(runtime, "notes", calc.build("notes"))
    use_memory(runtime, "shifty", shifty.build())
    app = build_http_app(runtime, host="127.0.0.1", port=8765)
    await runtime.gateway.start(wait=False)
    try:
        await wait_ready(runtime, ["calc", "notes", "shifty"])
        admin, agent = await make_keys(runtime)
        yield Stack(runtime=runtime, app=app, admin_key=admin, agent_key=agent, keys=[admin, agent])
    finally:
        await runtime.gateway.aclose()


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def login(client: httpx.AsyncClient, key: str) -> str:
    """Log in through the login form; returns the session's CSRF token."""
    response = await client.post(
        "/ui/login", data={"credential": key, "next": "/ui/live"}, headers={"origin": ORIGIN}
    )
    assert response.status_code == 303, response.text
    page = await client.get("/ui/live")
    assert page.status_code == 200
    match = CSRF.search(page.text)
    assert match is not None
    return match.group(1)


def shifty_stdio() -> dict[str, Any]:
    """Config of `tests/web/shifty.py` as a stdio upstream."""
    return {"transport": "stdio", "command": PYTHON, "args": [str(Path(shifty.__file__))]}


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Run `app` under uvicorn (lifespan on, so the gateway starts) on a free loopback port; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # listening before uvicorn starts: clients connect at once and wait for the lifespan
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        app, lifespan="on", log_level="warning", access_log=False, timeout_graceful_shutdown=3
    )
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        try:
            yield url
        finally:
            server.should_exit = True
    sock.close()


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}
