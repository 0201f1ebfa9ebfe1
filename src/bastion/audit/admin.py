"""Audit events for administration: API keys created or revoked and tool pins decided, from the admin API or
from `bastion keys` / `bastion tools`.

Why: a key is a credential and a pin decision releases or keeps a tool; who did which, for whom, belongs in the
same trail as the calls they later affect. The admin API emits the notice through its running gateway; the
commands have no gateway, so `bastion.app.commands.offline` writes the event into the configured sinks itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bastion.auth.apikeys import ApiKeyInfo
from bastion.pipeline.notice import Notice, NoticeKind


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
