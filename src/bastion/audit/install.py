"""The audit trail as a feature: the recorder as the first observer, the strict gate stage, the auth-failure hook.

`build_audit(config, store)` is what the composition root (`bastion.app`) calls; the root puts its observer first
(strict audit gates the reply) and its gate right after authentication. `auth_failure_hook(notifier)` is what the
HTTP app gives `AuthMiddleware`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bastion.audit.admin import expiry_notice
from bastion.audit.config import AuditConfig
from bastion.audit.keys import announce, audit_key
from bastion.audit.recorder import AuditRecorder
from bastion.audit.witness import build_witnesses
from bastion.auth.failures import FailureHook
from bastion.core.config import ClusterConfig, default_replica
from bastion.core.contribution import Contribution, Resource
from bastion.core.ports import Notifier
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.pipeline.stages.audit_gate import AuditGateStage
from bastion.state.base import StateStore
from bastion.state.config import StateConfig


class AuditSettings(Protocol):
    """The sections of the configuration the audit trail reads (`bastion.config.BastionConfig` is one)."""

    @property
    def audit(self) -> AuditConfig:
        """The trail's own section."""
        ...

    @property
    def state(self) -> StateConfig:
        """Where the audit key is kept."""
        ...

    @property
    def cluster(self) -> ClusterConfig:
        """This replica's name (the chain id)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Audit:
    """The audit feature of one gateway."""

    recorder: AuditRecorder
    """The trail (the dashboard reads `.reader`)."""
    gate: AuditGateStage | None
    """With `audit.mode: strict`: refuses calls while the trail cannot record them."""
    contribution: Contribution
    """The recorder as an observer, opened at start and closed last but one (the store closes after it)."""


def build_audit(config: AuditSettings, store: StateStore) -> Audit | None:
    """Create the configured recorder; None when `audit.enabled` is false."""
    audit = config.audit
    if not audit.enabled:
        return None
    key = audit_key(audit, config.state, create=True)
    announce(key)
    recorder = AuditRecorder.from_config(
        audit,
        replica=config.cluster.replica_id or default_replica(),
        key=key,
        witnesses=build_witnesses(audit.witnesses, store),
    )
    return Audit(
        recorder=recorder,
        gate=AuditGateStage(recorder) if audit.mode == "strict" else None,
        contribution=Contribution(
            observers=(recorder,),  # it also gets notices (on_notice)
            resources=(Resource(name="audit trail", open=recorder.open, close=recorder.aclose),),
        ),
    )


def auth_failure_hook(notifier: Notifier) -> FailureHook:
    """`AuthMiddleware`'s `on_failure`: an `auth_failure` notice with the reason, client address, path and the
    presented key's id when Bastion knows the key; the first time a key is refused as expired, also an
    `api_key` notice with action `expired`."""

    def failed(reason: str, client: str, path: str, facts: Mapping[str, Any] | None = None, /) -> None:
        facts = facts or {}
        key_id = str(facts.get("keyId", ""))
        detail: dict[str, Any] = {"reason": reason, "path": path[:200]}
        if key_id:
            detail["keyId"] = key_id
        notifier.emit_soon(
            Notice(kind=NoticeKind.AUTH_FAILURE, remote=client, severity="warning", detail=detail)
        )
        expired = facts.get("expiredKey")
        if key_id and isinstance(expired, Mapping):
            notifier.emit_soon(expiry_notice(key_id, expired, remote=client))

    return failed
