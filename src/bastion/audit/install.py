"""Attach the audit trail to a runtime: the recorder as the first observer, and the HTTP auth-failure hook.

`install_audit(runtime)` is what `build_runtime()` calls before telemetry, so observers run audit first (strict
audit gates the reply). `auth_failure_hook(gateway)` is what `build_http_app()` gives `AuthMiddleware`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from bastion.audit.keys import announce, audit_key
from bastion.audit.recorder import AuditRecorder, default_replica
from bastion.audit.witness import build_witnesses
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


def auth_failure_hook(gateway: Gateway) -> Callable[[str, str, str], None]:
    """`AuthMiddleware`'s `on_failure`: an `auth_failure` notice with the reason, client address and path only."""

    def failed(reason: str, client: str, path: str) -> None:
        gateway.emit_soon(
            Notice(
                kind=NoticeKind.AUTH_FAILURE,
                remote=client,
                severity="warning",
                detail={"reason": reason, "path": path[:200]},
            )
        )

    return failed
