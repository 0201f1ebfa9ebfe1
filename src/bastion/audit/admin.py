"""Audit events for administration: API keys created or revoked and tool pins decided, from the admin API or
from `bastion keys` / `bastion tools`.

Why: a key is a credential and a pin decision releases or keeps a tool; who did which, for whom, belongs in the
same trail as the calls they later affect. The admin API emits the notice through its running gateway; the
commands have no gateway, so they write the event into the configured sinks themselves, on the same chain
(`cluster.replica_id` or the host name) and with the same key and witnesses, and fails closed when it cannot.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from typing import Any

from bastion.audit.event import event_from_notice
from bastion.audit.keys import audit_key
from bastion.audit.recorder import AuditRecorder, default_replica
from bastion.audit.witness import build_witnesses
from bastion.auth.apikeys import ApiKeyInfo
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.state import open_state_store


def key_notice(action: str, key_id: str, *, by: str, via: str, info: ApiKeyInfo | None = None) -> Notice:
    """An `api_key` notice: `created` or `revoked`, which key (never its secret), for whom, by whom, through what.

    Args:
        action: `created` or `revoked`.
        key_id: The key's public id.
        by: The administrator (admin API principal, or the OS user running `bastion keys`).
        via: `admin_api` or `cli`.
        info: The key's facts, when known (principal, roles, expiry).
    """
    detail: dict[str, Any] = {"action": action, "keyId": key_id, "by": by, "via": via}
    if info is not None:
        detail.update(principal=info.principal, roles=list(info.roles), expiresAt=info.expires_at)
    return Notice(
        kind=NoticeKind.API_KEY,
        principal=by,
        severity="warning" if action == "revoked" else "info",
        target=key_id,
        detail=detail,
    )


def expiry_notice(key_id: str, key: Mapping[str, Any], *, remote: str = "") -> Notice:
    """An `api_key` notice with action `expired`: the gateway saw the key presented after its expiry, the first
    time (`ApiKeyStore` marks it once). `by` is `bastion` (no administrator acted); `principal` is the key's."""
    roles = key.get("roles") or []
    detail: dict[str, Any] = {
        "action": "expired",
        "keyId": key_id,
        "by": "bastion",
        "via": "auth",
        "principal": str(key.get("principal", "")),
        "roles": [str(r) for r in roles] if isinstance(roles, list | tuple) else [],
        "expiresAt": key.get("expires_at"),
    }
    return Notice(
        kind=NoticeKind.API_KEY,
        principal=detail["principal"],
        roles=tuple(detail["roles"]),
        remote=remote,
        severity="warning",
        target=key_id,
        detail=detail,
    )


def pin_notice(decision: str, server: str, tool: str, *, by: str, via: str, pending_hash: str = "") -> Notice:
    """A `tool_changed` notice for an operator's pin decision (`approved`, `rejected`, `forgotten`) and who made it.

    The guard's screen reports the effect separately (`event: approved` when it releases a held tool); this is the
    decision itself, recorded even where no tool was held.
    """
    detail = {"event": "decided", "decision": decision, "by": by, "via": via, "pendingHash": pending_hash}
    return Notice(kind=NoticeKind.TOOL_CHANGED, principal=by, server=server, target=tool, detail=detail)


def cli_user() -> str:
    """Who runs `bastion keys` / `bastion tools` (the OS account), for the `by` of their events."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in containers without a passwd entry
        return "cli"


async def record_offline(config_path: str, notice: Notice) -> None:
    """Write one notice into the trail of the gateway configured in `config_path` (strict: durable or raise).

    The state store (the witness) is opened from the same config, with its paths anchored as the gateway's.

    Raises:
        ConfigError: The config cannot be loaded.
        AuditUnavailable: The event could not be made durable.
    """
    from bastion.config import load_config

    config = load_config(config_path)
    if not config.audit.enabled:
        return
    async with open_state_store(config.state) as store:
        recorder = AuditRecorder.from_config(
            config.audit,
            replica=config.cluster.replica_id or default_replica(),
            key=audit_key(config.audit, config.state, create=True),
            witnesses=build_witnesses(config.audit.witnesses, store),
        )
        await recorder.open()
        try:
            await recorder.record(event_from_notice(notice), wait=True)
        finally:
            await recorder.aclose()  # a final checkpoint covers the event, and its head goes to the witnesses
