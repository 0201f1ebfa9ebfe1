"""Contributions of the features that sit below the core: state, authentication and policy.

Those packages know nothing of the gateway (they are lower layers), so their wiring into it, the part that needs
the core's ports, lives here, beside the composition root (`app/runtime.py`) that is its only user.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass, field

import anyio

from bastion.auth.authenticator import Authenticator
from bastion.config.model import BastionConfig
from bastion.core.contribution import Contribution, Resource
from bastion.core.ports import Ports
from bastion.core.tasks import BackgroundTasks
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.pipeline.stage import Stage
from bastion.pipeline.stages.authorize import AuthorizeStage
from bastion.pipeline.stages.flow import FlowStage
from bastion.pipeline.stages.list_filter import ListFilterStage
from bastion.pipeline.stages.ratelimit import RateLimitStage
from bastion.policy.holder import PolicyHolder
from bastion.protocol.methods import LIST_CHANGED
from bastion.state.base import StateStore


def state_contribution(store: StateStore) -> Contribution:
    """The state store opens before everything and closes after everything (it is given first)."""

    async def open_store() -> None:
        await store.__aenter__()

    return Contribution(resources=(Resource(name="state store", open=open_store, close=store.aclose),))


def auth_contribution(
    config: BastionConfig, store: StateStore, authenticator: Authenticator, ports: Ports
) -> Contribution:
    """The authenticator's closing, and the sweeper that ends sessions of revoked keys and expired tokens on
    every replica (the store is shared)."""
    from bastion.auth.apikeys import ApiKeyStore
    from bastion.auth.sweep import CredentialSweeper

    sweeper = CredentialSweeper(ports, ApiKeyStore(store) if config.auth.api_keys.enabled else None)
    return Contribution(
        resources=(
            Resource(name="authenticator", close=authenticator.aclose),
            Resource(name="credential sweeper", open=sweeper.start, close=sweeper.aclose),
        )
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyParts:
    """The policy feature: its holder, its stages (placed by the root) and its contribution."""

    holder: PolicyHolder | None
    """The policy in force, hot-reloaded; None without a policy (then every stage below is None too)."""
    authorize: Stage | None = None
    rate_limit: Stage | None = None
    flow: Stage | None = None
    flow_capture: Stage | None = None
    list_filter: Stage | None = None
    contribution: Contribution = field(default_factory=Contribution)
    """The rate limiter and flow stage as observers (they release slots and record taint whatever the outcome),
    and the file watcher."""


def _policy_holder(config: BastionConfig, config_path: str | None) -> PolicyHolder | None:
    if config.policy_file:
        return PolicyHolder.from_file(config.policy_file)
    if config.policy is None:
        return None
    if config_path is not None:
        return PolicyHolder.from_file(config_path)  # so edits to bastion.yaml's policy hot-reload
    return PolicyHolder.from_config(config.policy)


def build_policy(
    config: BastionConfig, config_path: str | None, store: StateStore, ports: Ports
) -> PolicyParts:
    """Authorization, rate limits, flow rules and list filtering, when there is a policy."""
    holder = _policy_holder(config, config_path)
    if holder is None:
        return PolicyParts(holder=None)
    from bastion.policy.labels import references_from_servers
    from bastion.policy.taint import TaintStore

    rate_limit = RateLimitStage(holder, store)
    taint = TaintStore(store, ttl=holder.engine.flow.config.ttl_seconds)
    flow = FlowStage(
        holder, taint, references=references_from_servers(config.servers)
    )  # idle while `flow` is off
    lists = ports.lists
    return PolicyParts(
        holder=holder,
        authorize=AuthorizeStage(holder),
        rate_limit=rate_limit,
        flow=flow,
        flow_capture=flow.capture,
        list_filter=ListFilterStage(holder, split=lists.split_name, server_of_uri=lists.server_of_uri),
        contribution=Contribution(observers=(rate_limit, flow), resources=(_policy_watch(holder, ports),)),
    )


def _policy_watch(holder: PolicyHolder, ports: Ports) -> Resource:
    """Hot reload: watch the policy file and reload on SIGHUP; a new policy may change what lists show."""
    stop = anyio.Event()
    tasks = BackgroundTasks()
    loops: list[asyncio.AbstractEventLoop] = []

    def announce() -> None:
        for method in LIST_CHANGED:
            tasks.spawn(ports.notify_sessions(method))

    def reloaded(applied: bool) -> None:
        # Called from the watcher's worker thread or a signal handler: hop onto the loop.
        if not loops:
            return
        notice = Notice(
            kind=NoticeKind.POLICY_RELOAD,
            severity="info" if applied else "warning",
            detail={"applied": applied, "outcome": "applied" if applied else "rejected: old policy kept"},
        )
        loops[0].call_soon_threadsafe(ports.emit_soon, notice)
        if applied:
            loops[0].call_soon_threadsafe(announce)

    holder.on_reload.append(reloaded)

    async def start() -> None:
        loops.append(asyncio.get_running_loop())
        tasks.spawn(holder.watch(stop=stop))
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loops[0].add_signal_handler(signal.SIGHUP, holder.reload)

    async def close() -> None:
        stop.set()
        await tasks.cancel()

    return Resource(name="policy watcher", open=start, close=close)
