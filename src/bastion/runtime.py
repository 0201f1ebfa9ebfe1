"""Assemble a running Bastion from config: state, authentication, policy, the pipeline, observers, the HTTP app.

Stage order is fixed here, with the reason: authenticate (nothing else may see an anonymous call), the strict
audit gate (no upstream may act while the trail is down), authorize
(cheapest refusal, and hidden tools must not reach detectors), rate-limit (count only calls that could run),
flow (taint rules; on the way back it reads the guard's findings), guard (detectors and schema validation; the
most expensive), flow-capture (the raw result for fingerprints). The response path runs them in reverse.
Observers run outside the chain for every exchange; audit is first, because strict audit gates the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from bastion.auth.authenticator import Authenticator
from bastion.auth.principal import Principal
from bastion.config.model import BastionConfig
from bastion.errors import ConfigError
from bastion.gateway import Gateway
from bastion.pipeline.approvals import ApprovalQueue
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.pipeline.stage import ExchangeObserver, Stage
from bastion.policy.holder import PolicyHolder
from bastion.protocol.methods import LIST_CHANGED
from bastion.state import open_state_store
from bastion.state.base import StateStore

if TYPE_CHECKING:
    from bastion.pipeline.stages.flow import FlowStage

logger = logging.getLogger("bastion.runtime")


@dataclass(slots=True)
class Runtime:
    """Everything built from one config, owned by the gateway's lifecycle."""

    config: BastionConfig
    gateway: Gateway
    store: StateStore
    authenticator: Authenticator
    policy: PolicyHolder | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def _policy_holder(config: BastionConfig, config_path: str | None) -> PolicyHolder | None:
    if config.policy_file:
        return PolicyHolder.from_file(config.policy_file)
    if config.policy is None:
        return None
    if config_path is not None:
        return PolicyHolder.from_file(config_path)  # so edits to bastion.yaml's policy hot-reload
    return PolicyHolder.from_config(config.policy)


def _flow_stage(config: BastionConfig, policy: PolicyHolder | None, store: StateStore) -> FlowStage | None:
    """The flow stage (taint and flow rules) when there is a policy; it does nothing while `flow` is off."""
    if policy is None:
        return None
    from bastion.pipeline.stages.flow import FlowStage
    from bastion.policy.labels import references_from_servers
    from bastion.policy.taint import TaintStore

    taint = TaintStore(store, ttl=policy.engine.flow.config.ttl_seconds)
    return FlowStage(policy, taint, references=references_from_servers(config.servers))


def build_runtime(config: BastionConfig, *, config_path: str | None = None) -> Runtime:
    """Build every component the config asks for, wired into one gateway."""
    from bastion.guard.setup import EXTRAS_KEY as GUARDRAILS_KEY
    from bastion.guard.setup import build_guardrails
    from bastion.pipeline.stages.authorize import AuthenticateStage, AuthorizeStage, filter_listing
    from bastion.pipeline.stages.ratelimit import RateLimitStage

    store = open_state_store(config.state)
    authenticator = Authenticator.from_config(config.auth, store)
    policy = _policy_holder(config, config_path)
    if policy is None:
        logger.warning(
            "no policy configured: every %s caller may use every tool",
            "authenticated" if config.auth.enabled else "",
        )
    stages: list[Stage] = [AuthenticateStage(required=config.auth.enabled)]
    observers: list[ExchangeObserver] = []
    if policy is not None:
        rate_limit = RateLimitStage(policy, store)
        stages += [AuthorizeStage(policy), rate_limit]
        observers.append(rate_limit)  # releases concurrency slots whatever the outcome
    flow = _flow_stage(config, policy, store)
    if flow is not None:
        stages.append(flow)  # before the guard: on the way back it reads the guard's findings on the result
        observers.append(flow)
    guardrails = build_guardrails(config.guardrails, store)
    if guardrails is not None:
        stages.append(guardrails.stage)  # last: the most expensive, and it sees only calls that may run
    if flow is not None:
        stages.append(flow.capture)  # after the guard: keeps the result before redaction (finding spans)
    gateway = Gateway(config, stages=stages, observers=observers)
    gateway.approvals = ApprovalQueue(store)  # shared across replicas when the store is
    runtime = Runtime(config=config, gateway=gateway, store=store, authenticator=authenticator, policy=policy)
    gateway.startup.append(_opener(store))
    gateway.closers.append(store.aclose)
    gateway.closers.append(authenticator.aclose)
    from bastion.auth.apikeys import ApiKeyStore
    from bastion.auth.sweep import CredentialSweeper

    # Revoked keys and expired tokens end their sessions on every replica (the store is shared).
    sweeper = CredentialSweeper(gateway, ApiKeyStore(store) if config.auth.api_keys.enabled else None)
    gateway.startup.append(sweeper.start)
    gateway.closers.append(sweeper.aclose)
    if guardrails is not None:
        guardrails.attach(gateway)  # screens tool lists (poisoning, pins) before the catalogue caches them
        runtime.extras[GUARDRAILS_KEY] = guardrails
    if policy is not None:
        _watch_policy(gateway, policy)
        holder = policy
        catalog = gateway.catalog

        def visible(principal: Principal, method: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return filter_listing(
                holder.engine,
                principal,
                method,
                items,
                split=catalog.split_name,
                server_of_uri=catalog.server_of_uri,
            )

        gateway.list_filter = visible
    from bastion.audit.install import install_audit
    from bastion.telemetry.install import install_telemetry

    recorder = install_audit(runtime)  # the first observer: strict audit gates the reply
    if recorder is not None and config.audit.mode == "strict":
        from bastion.pipeline.stages.audit_gate import AuditGateStage

        # Right after authentication: with the trail down, no upstream may act on an unrecorded call.
        first, *rest = gateway.pipeline.stages
        gateway.pipeline.stages = (first, AuditGateStage(recorder), *rest)
    # Keep after audit: observers run audit first, then metrics and anomaly detection.
    install_telemetry(runtime)
    from bastion.cluster.member import install_cluster

    install_cluster(runtime)  # last: it hears others' changes to pins, keys and policy, so those must exist
    return runtime


def _watch_policy(gateway: Gateway, holder: PolicyHolder) -> None:
    """Hot reload: watch the policy file and reload on SIGHUP; a new policy may change what lists show."""
    stop = anyio.Event()
    tasks: list[asyncio.Task[None]] = []

    loops: list[asyncio.AbstractEventLoop] = []

    def announce() -> None:
        for method in LIST_CHANGED:
            tasks.append(asyncio.ensure_future(gateway.notify_sessions(method)))

    def reloaded(applied: bool) -> None:
        # Called from the watcher's worker thread or a signal handler: hop onto the loop.
        if not loops:
            return
        notice = Notice(
            kind=NoticeKind.POLICY_RELOAD,
            severity="info" if applied else "warning",
            detail={"applied": applied, "outcome": "applied" if applied else "rejected: old policy kept"},
        )
        loops[0].call_soon_threadsafe(gateway.emit_soon, notice)
        if applied:
            loops[0].call_soon_threadsafe(announce)

    holder.on_reload.append(reloaded)

    async def start() -> None:
        loops.append(asyncio.get_running_loop())
        tasks.append(asyncio.create_task(holder.watch(stop=stop)))
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loops[0].add_signal_handler(signal.SIGHUP, holder.reload)

    async def close() -> None:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    gateway.startup.append(start)
    gateway.closers.append(close)


def _opener(store: StateStore) -> Any:
    async def open_store() -> None:
        await store.__aenter__()

    return open_store


def build_gateway(config: BastionConfig, *, config_path: str | None = None) -> Gateway:
    """A gateway with every configured stage and observer."""
    return build_runtime(config, config_path=config_path).gateway


def check_listen_address(config: BastionConfig, host: str) -> None:
    """Refuse to listen beyond loopback with authentication switched off."""
    if config.auth.enabled:
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigError(
            f"refusing to listen on {host} with authentication off; enable `auth` or bind to 127.0.0.1",
            path="auth.enabled",
        )


def build_http_app(runtime: Runtime, *, host: str, port: int) -> Any:
    """The ASGI app: security middleware, authentication, then MCP endpoints and health."""
    from bastion.audit.install import auth_failure_hook
    from bastion.auth.middleware import AuthMiddleware
    from bastion.server.app import create_app
    from bastion.telemetry.install import telemetry_routes, wrap_http_app
    from bastion.web.wiring import bearer_auth_config, dashboard_routes

    # The dashboard's own gate guards /ui and /api (admins only, session cookie or bearer), so the bearer
    # middleware leaves those paths to it (`bearer_auth_config`).
    routes = [*telemetry_routes(runtime), *dashboard_routes(runtime)]

    def wrap(inner: Any) -> Any:
        # Inside the security layers (catch-all, Host/Origin, body limit) that create_app keeps outermost.
        return AuthMiddleware.from_config(
            wrap_http_app(runtime, inner),
            bearer_auth_config(runtime),
            runtime.authenticator,
            on_failure=auth_failure_hook(runtime.gateway),
        )

    return create_app(
        runtime.gateway,
        extra_routes=routes,
        wrap=wrap,
        listen_host=host,
        readiness_detail=readiness_detail(runtime),
    )


def readiness_detail(runtime: Runtime) -> Any:
    """`/readyz` detail (upstream names, states, last errors) only for the admin role; with authentication off
    (loopback only, where every caller may already use every tool) for everyone."""
    from bastion.errors import AuthError

    config = runtime.config

    async def allowed(scope: Any) -> bool:
        if not config.auth.enabled:
            return True
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            principal = await runtime.authenticator.authenticate(headers)
        except AuthError:
            return False
        policy = runtime.policy
        roles = policy.engine.roles_of(principal) if policy is not None else principal.roles
        return config.ui.admin_role in roles

    return allowed
