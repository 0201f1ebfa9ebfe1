"""The composition root: build a running Bastion from config. The only module that imports every feature.

Each feature is built from its config section (and the gateway's ports where it needs them) into a value: its
typed handles and a `Contribution`. This module then hands the gateway the stages in ONE ordered list, with the
reason for each place, and the contributions in the order their observers must run. Nothing else assembles a
gateway, and no feature sets anything on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bastion.app.features import (
    PolicyParts,
    auth_contribution,
    build_policy,
    state_contribution,
)
from bastion.app.guardrails import Guardrails, build_guardrails, guard_contribution
from bastion.audit.install import Audit, build_audit
from bastion.auth.authenticator import Authenticator
from bastion.cluster.member import ClusterMember, build_cluster
from bastion.config.model import BastionConfig
from bastion.core.contribution import Contribution
from bastion.core.gateway import Gateway
from bastion.pipeline.approvals import ApprovalQueue
from bastion.pipeline.stage import Stage
from bastion.pipeline.stages.authorize import AuthenticateStage
from bastion.policy.holder import PolicyHolder
from bastion.state import open_state_store
from bastion.state.base import StateStore
from bastion.telemetry.install import Telemetry, build_telemetry
from bastion.web.wiring import Dashboard

logger = logging.getLogger("bastion.runtime")


@dataclass(slots=True, kw_only=True)
class Runtime:
    """Everything built from one config, owned by the gateway's lifecycle. A part is None when switched off."""

    config: BastionConfig
    gateway: Gateway
    store: StateStore
    authenticator: Authenticator
    policy: PolicyHolder | None = None
    audit: Audit | None = None
    """The audit trail (`audit.recorder`; the dashboard reads its reader)."""
    guardrails: Guardrails | None = None
    """The guard, its stage, the tool screen and the pins (the admin API reads `pins`)."""
    telemetry: Telemetry | None = None
    """Metrics, traces, anomaly alerts (the HTTP app serves `/metrics` from it)."""
    cluster: ClusterMember | None = None
    """This replica's part in a cluster (session registry, events from other replicas)."""
    dashboard: Dashboard | None = None
    """The operator dashboard, once the HTTP app was built with it."""


def build_runtime(config: BastionConfig, *, config_path: str | None = None) -> Runtime:
    """Build every component the config asks for, wired into one gateway."""
    store = open_state_store(config.state)
    authenticator = Authenticator.from_config(config.auth, store)
    gateway = Gateway(
        config, approvals=ApprovalQueue(store)
    )  # approvals shared across replicas with the store
    policy = build_policy(config, config_path, store, gateway)
    audit = build_audit(config, store)
    guardrails = build_guardrails(config.guardrails, store)
    telemetry = build_telemetry(
        config.telemetry,
        gateway,
        store=store,
        audit=audit.recorder if audit is not None else None,
        authenticator=authenticator,
    )
    # The chain, in order; the response path runs it in reverse.
    stages: list[Stage | None] = [
        AuthenticateStage(required=config.auth.enabled),  # nothing else may see an anonymous call
        audit.gate
        if audit is not None
        else None,  # strict audit: no upstream may act while the trail is down
        policy.authorize,  # the cheapest refusal; hidden tools must not reach the detectors
        policy.rate_limit,  # counts only calls that could run
        policy.flow,  # taint rules; on the way back it reads the guard's findings on the result
        guardrails.stage if guardrails is not None else None,  # the most expensive: only calls that may run
        policy.flow_capture,  # after the guard: keeps the result before redaction (finding spans)
        policy.list_filter,  # last, so first on the way back: hidden list entries reach no stage or observer
    ]
    # The listing chain, in order (response path: last first): what upstreams list, judged before the catalogue
    # caches it, so a withheld tool is unknown to routing too (`pipeline/stages/listing.py`).
    tool_screen, entry_screen = (
        guardrails.listing_stages(gateway.emit) if guardrails is not None else (None, None)
    )
    listing: list[Stage | None] = [
        tool_screen,  # tool definitions: poisoning and rug pulls (pins); withheld tools are unknown to routing
        entry_screen,  # prompts, resources, templates: the guard's `listing` channel (each judges its own lists)
    ]
    gateway.use(
        Contribution(
            stages=tuple(s for s in stages if s is not None),
            listing_stages=tuple(s for s in listing if s is not None),
        )
    )
    # Contributions, in the order their observers run and their resources start (they close in reverse): the
    # store opens first and closes last; audit observes first (strict audit gates the reply) and closes right
    # before the store, whose witness takes the final checkpoint; the cluster member comes last, because it
    # hears others' changes to pins, keys and policy, so those must exist.
    gateway.use(
        state_contribution(store),
        audit.contribution if audit is not None else Contribution(),
        auth_contribution(config, store, authenticator, gateway),
        policy.contribution,
        guard_contribution(guardrails, gateway) if guardrails is not None else Contribution(),
        telemetry.contribution,
    )
    if policy.holder is None:
        logger.warning(
            "no policy configured: every %s caller may use every tool",
            "authenticated" if config.auth.enabled else "",
        )
    cluster = build_cluster(
        config, store, gateway, policy=policy.holder, screen=guardrails.screen if guardrails else None
    )
    gateway.use(cluster.contribution())
    return Runtime(
        config=config,
        gateway=gateway,
        store=store,
        authenticator=authenticator,
        policy=policy.holder,
        audit=audit,
        guardrails=guardrails,
        telemetry=telemetry,
        cluster=cluster,
    )


__all__ = ["PolicyParts", "Runtime", "build_runtime"]
