"""Attach the audit trail to a runtime: the recorder as the first observer, and the HTTP auth-failure hook.

`install_audit(runtime)` is what `build_runtime()` calls before telemetry, so observers run audit first (strict
audit gates the reply). `auth_failure_hook(gateway)` is what `build_http_app()` gives `AuthMiddleware`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from bastion.audit.admin import expiry_notice
from bastion.audit.keys import announce, audit_key
from bastion.audit.recorder import AuditRecorder, default_replica
from bastion.audit.witness import build_witnesses
from bastion.auth.failures import FailureHook
from bastion.pipeline.notice import Notice, NoticeKind

if TYPE_CHECKING:
    from bastion.gateway import Gateway
    from bastion.runtime import Runtime

EXTRAS_KEY: Final = "audit"
"""Where `install_audit` keeps the `AuditRecorder` in `Runtime.extras` (the dashboard reads `.reader`)."""


def install_audit(runtime: Runtime) -> AuditRecorder | None:
    """Create the configured recorder and wire it into the gateway's observers and lifecycle."""
    config = runtime.config.audit
    if not config.enabled:
        return None
    key = audit_key(config, runtime.config.state, create=True)
    announce(key)
    recorder = AuditRecorder.from_config(
        config,
        replica=runtime.config.cluster.replica_id or default_replica(),
        key=key,
        witnesses=build_witnesses(config.witnesses, runtime.store),
    )
    gateway = runtime.gateway
    gateway.observers.insert(0, recorder)  # first: strict audit must gate the reply; it also gets notices
    gateway.startup.append(recorder.open)
    # Closers run in reverse: audit closes last, after every notice, and the state store right after it,
    # because the final checkpoint's head goes to the state witness.
    if runtime.store.aclose in gateway.closers:
        gateway.closers.remove(runtime.store.aclose)
    gateway.closers[0:0] = [runtime.store.aclose, recorder.aclose]
    runtime.extras[EXTRAS_KEY] = recorder
    return recorder


def auth_failure_hook(gateway: Gateway) -> FailureHook:
    """`AuthMiddleware`'s `on_failure`: an `auth_failure` notice with the reason, client address, path and the
    presented key's id when Bastion knows the key; the first time a key is refused as expired, also an
    `api_key` notice with action `expired`."""

    def failed(reason: str, client: str, path: str, facts: Mapping[str, Any] | None = None, /) -> None:
        facts = facts or {}
        key_id = str(facts.get("keyId", ""))
        detail: dict[str, Any] = {"reason": reason, "path": path[:200]}
        if key_id:
            detail["keyId"] = key_id
        gateway.emit_soon(
            Notice(kind=NoticeKind.AUTH_FAILURE, remote=client, severity="warning", detail=detail)
        )
        expired = facts.get("expiredKey")
        if key_id and isinstance(expired, Mapping):
            gateway.emit_soon(expiry_notice(key_id, expired, remote=client))

    return failed
