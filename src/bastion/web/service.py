"""`AdminService`: what the dashboard and the admin API can see and do, in one place both call.

Rules:
- Everything returned is built from secret-free sources: `UpstreamConnection.describe()`, tool definitions,
  audit records, `ApiKeyInfo`, the policy document. Server configuration (command, args, env, URL, headers) is
  never read here, so it cannot leak through a page or an API response. A new API key is returned once, by
  `create_key`, and never stored in clear.
- Human decisions (approvals, tool definition changes) are emitted as notices, so audit records who decided.
- The policy tester uses the engine in force, exactly as `bastion policy test` does with a file.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

import orjson
import yaml

from bastion.audit.admin import key_notice, pin_notice
from bastion.auth.apikeys import ApiKeyInfo, ApiKeyStore
from bastion.errors import BastionError
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.policy.engine import Kind
from bastion.policy.names import is_canonical
from bastion.types import Principal
from bastion.upstream.connection import State
from bastion.web.adapters import AuditFilters, AuditSource, PinView, ToolPinsView
from bastion.web.config import UIConfig
from bastion.web.feed import LiveFeed

if TYPE_CHECKING:
    from bastion.web.wiring import Runtime

logger = logging.getLogger("bastion.web")

CSV_COLUMNS: Final = (
    "time", "event_id", "kind", "principal", "server", "method", "target", "outcome", "rule", "error_reason",
    "findings", "latency_ms", "replica", "seq", "hash",
)  # fmt: skip
"""Columns of a CSV audit export (the JSON Lines export has every field)."""
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


class InvalidInput(ValueError):
    """A request the admin API refuses with 400 (the message names the field, never a secret)."""


def _csv_safe(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def split_name(name: str) -> tuple[str, str]:
    """`server__tool` -> (server, tool); raises `InvalidInput` when the name is not namespaced."""
    server, sep, local = name.partition("__")
    if not sep or not server or not local:
        raise InvalidInput(f"{name!r} is not a namespaced <server>__<name>")
    return server, local


class AdminService:
    """Reads and actions behind every dashboard page and admin API route."""

    def __init__(
        self,
        runtime: Runtime,
        *,
        feed: LiveFeed,
        config: UIConfig,
        audit: AuditSource,
        pins: ToolPinsView | None,
    ) -> None:
        self.runtime = runtime
        self.gateway = runtime.gateway
        self.feed = feed
        self.config = config
        self.audit = audit
        self.pins = pins
        self.keys_store = ApiKeyStore(runtime.store)

    # -- sessions ---------------------------------------------------------------------------------------------

    async def session_taint(self, session_id: str) -> dict[str, Any]:
        """A client session's flow taint: its marks (tool, time, finding kinds, event) and how many fingerprints."""
        from bastion.policy.taint import TaintStore

        policy = self.runtime.policy
        flow = policy.engine.flow.config if policy is not None else None
        taint = await TaintStore(self.runtime.store, ttl=flow.ttl_seconds if flow else 1.0).load(session_id)
        return {
            "session_id": session_id,
            "enabled": bool(flow and flow.enabled),
            "kinds": taint.kinds,
            "marks": [m.to_dict() for m in taint.marks],
            "fingerprints": len(taint.fingerprints),
        }

    # -- overview and servers ---------------------------------------------------------------------------------

    async def overview(self) -> dict[str, Any]:
        """Feed counters, upstream health, alerts and the number of calls waiting for a human."""
        health = self.gateway.health()
        return {
            **self.feed.overview(),
            "health": health,
            "pending_approvals": len(await self.gateway.approvals.pending()),
        }

    async def servers(self) -> list[dict[str, Any]]:
        """Every configured upstream with its state, its tools and their pins (no configuration values)."""
        pins: dict[tuple[str, str], PinView] = {}
        if self.pins is not None:
            pins = {(p.server, p.tool): p for p in await self.pins.list()}
        out: list[dict[str, Any]] = []
        for name, server in self.runtime.config.servers.items():
            conn = self.gateway.upstreams.get(name)
            described = (
                conn.describe() if conn is not None else {"state": "disabled", "transport": server.transport}
            )
            tools: list[dict[str, Any]] = []
            if conn is not None and conn.state is State.READY:
                try:
                    tools = await self.gateway.catalog.upstream_list(name, "tools/list")
                except BastionError:
                    logger.warning("listing tools of %s for the dashboard failed", name)
            rows = [_tool_row(tool, pins.pop((name, str(tool.get("name", ""))), None)) for tool in tools]
            # Pinned tools the upstream did not list (held back by the screen, or gone): shown from their pin.
            rows += [_tool_row(None, pins.pop(key)) for key in sorted(k for k in pins if k[0] == name)]
            out.append({"name": name, **described, "tools": rows})
        return out

    async def tool_changes(self) -> list[dict[str, Any]]:
        """Tool definitions waiting for a decision (changed or new), with their diffs."""
        if self.pins is None:
            return []
        return [p.to_dict() for p in await self.pins.list() if p.status != "pinned"]

    async def decide_tool(
        self, server: str, tool: str, *, approve: bool, by: Principal, pending_hash: str | None = None
    ) -> bool:
        """Approve or reject a changed tool definition; False when nothing was waiting or pinning is off.

        `pending_hash` binds an approval to the definition the operator reviewed. The pin records who decided,
        and the guard's tool screen emits the `tool_changed` notice (audit) when it releases or keeps the tool.
        """
        if self.pins is None:
            return False
        if approve:
            done = await self.pins.approve(server, tool, by=by.name, pending_hash=pending_hash)
        else:
            done = await self.pins.reject(server, tool, by=by.name)
        if done:
            logger.info("tool %s__%s %s by %s", server, tool, "approved" if approve else "rejected", by.name)
            decision = "approved" if approve else "rejected"
            notice = pin_notice(
                decision, server, tool, by=by.name, via="admin_api", pending_hash=pending_hash or ""
            )
            await self.gateway.emit(notice)
        return done

    # -- approvals --------------------------------------------------------------------------------------------

    async def approvals(self) -> list[dict[str, Any]]:
        return [p.to_dict() for p in await self.gateway.approvals.pending()]

    async def resolve_approval(self, approval_id: str, *, approved: bool, by: Principal) -> bool:
        """Answer a held call; False when it is unknown or already answered (the first answer wins)."""
        waiting = {p.id: p for p in await self.gateway.approvals.pending()}.get(approval_id)
        if not await self.gateway.approvals.resolve(approval_id, approved):
            return False
        await self.gateway.emit(
            Notice(
                kind=NoticeKind.APPROVAL,
                principal=waiting.principal if waiting else "",
                server=(waiting.server or "") if waiting else "",
                target=(waiting.target or "") if waiting else "",
                detail={"approval": approval_id, "approved": approved, "by": by.name},
            )
        )
        return True

    # -- principals, keys and policy --------------------------------------------------------------------------

    async def keys(self) -> list[dict[str, Any]]:
        return [info.to_dict() for info in sorted(await self.keys_store.list(), key=lambda i: i.created_at)]

    async def create_key(
        self, principal: str, roles: Iterable[str], *, expires_in: float | None, by: Principal
    ) -> tuple[str, ApiKeyInfo]:
        """Mint a key; the returned full key is the only copy there will ever be."""
        principal = principal.strip()
        clean_roles = sorted({r.strip() for r in roles if r.strip()})
        if not principal or not principal.isprintable() or len(principal) > 200:
            raise InvalidInput("principal must be a non-empty printable name")
        if any(not r.isprintable() or len(r) > 100 for r in clean_roles):
            raise InvalidInput("roles must be printable names")
        key, info = await self.keys_store.create(principal, clean_roles, expires_in=expires_in)
        logger.info("API key %s created for %s by %s", info.key_id, principal, by.name)
        await self.gateway.emit(key_notice("created", info.key_id, by=by.name, via="admin_api", info=info))
        return key, info

    async def revoke_key(self, key_id: str, *, by: Principal) -> bool:
        done = await self.keys_store.revoke(key_id)
        if done:
            logger.info("API key %s revoked by %s", key_id, by.name)
            await self.gateway.emit(key_notice("revoked", key_id, by=by.name, via="admin_api"))
        return done

    def policy(self) -> dict[str, Any]:
        """The policy in force as YAML, with its mode, warnings and where it came from."""
        holder = self.runtime.policy
        if holder is None:
            return {"configured": False, "admin_role": self.config.admin_role}
        config = holder.engine.config
        document = config.model_dump(mode="json", exclude_defaults=True)
        return {
            "configured": True,
            "admin_role": self.config.admin_role,
            "source": str(holder.path) if holder.path is not None else "inline",
            "generation": holder.generation,
            "enabled": config.enabled,
            "mode": config.mode,
            "default": config.default,
            "roles": {
                name: {"description": role.description, "rules": len(role.rules)}
                for name, role in config.roles.items()
            },
            "warnings": list(holder.engine.warnings),
            "yaml": yaml.safe_dump({"policy": document}, sort_keys=False, allow_unicode=True),
        }

    async def principals(self) -> list[dict[str, Any]]:
        """Every principal the policy names or an API key authenticates, with the roles each holds."""
        holder = self.runtime.policy
        granted: Mapping[str, list[str]] = holder.engine.config.principals if holder is not None else {}
        rows: dict[str, dict[str, Any]] = {
            name: {"name": name, "policy_roles": sorted(roles), "key_roles": [], "active_keys": 0}
            for name, roles in granted.items()
        }
        for info in await self.keys_store.list():
            row = rows.setdefault(
                info.principal,
                {"name": info.principal, "policy_roles": [], "key_roles": [], "active_keys": 0},
            )
            if info.revoked_at is None:
                row["active_keys"] += 1
                row["key_roles"] = sorted(set(row["key_roles"]) | set(info.roles))
        for row in rows.values():
            row["admin"] = self.config.admin_role in set(row["policy_roles"]) | set(row["key_roles"])
        return sorted(rows.values(), key=lambda r: str(r["name"]))

    def test_policy(
        self,
        *,
        principal: str,
        roles: Iterable[str],
        kind: str,
        name: str,
        server: str = "",
        args: Any = None,
    ) -> dict[str, Any]:
        """Would this call be allowed? The decision and explanation of the engine in force."""
        if not principal.strip():
            raise InvalidInput("principal is required")
        if kind not in ("tool", "prompt", "resource"):
            raise InvalidInput("kind must be tool, prompt or resource")
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise InvalidInput("args must be a JSON object")
        target: Kind
        if kind == "resource":
            target, local = "resource", name
            if not local:
                raise InvalidInput("a resource URI is required")
        else:
            target = "tool" if kind == "tool" else "prompt"
            server, local = split_name(name)
        subject = Principal(
            name=principal.strip(), roles=frozenset(r.strip() for r in roles if r.strip()), method="dashboard"
        )
        holder = self.runtime.policy
        base = {"principal": subject.name, "kind": target, "server": server, "name": local}
        if holder is None:
            return base | {
                "allowed": True, "rule": "", "monitor": False, "visible": True, "roles": sorted(subject.roles),
                "canonical": True, "explanation": "no policy configured: every authenticated caller may use every tool",
            }  # fmt: skip
        engine = holder.engine
        decision = engine.decide(subject, target, server, local, args)
        return base | {
            **decision.to_dict(),
            "roles": sorted(engine.roles_of(subject)),
            "canonical": target == "resource" or is_canonical(f"{server}__{local}"),
            "visible": engine.visible(subject, target, server, local),
        }

    # -- audit ------------------------------------------------------------------------------------------------

    async def event(self, event_id: str) -> dict[str, Any] | None:
        """One full audit event: from the audit store, or from the live feed while it is recent."""
        found = await self.audit.get(event_id)
        return found if found is not None else (await _feed_event(self.feed, event_id))

    async def export(self, filters: AuditFilters, fmt: str) -> tuple[bytes, str]:
        """(body, media type) of an audit export, capped at `ui.export_limit` events."""
        capped = dataclasses.replace(filters, limit=min(filters.limit, self.config.export_limit))
        events = await self.audit.search(capped)
        if fmt == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(CSV_COLUMNS)
            for event in events:
                findings = sum(len(d.get("findings") or ()) for d in event.get("decisions") or ())
                row = {**event, "findings": findings}
                writer.writerow([_csv_safe(row.get(c)) for c in CSV_COLUMNS])
            return buffer.getvalue().encode(), "text/csv; charset=utf-8"
        if fmt != "jsonl":
            raise InvalidInput("format must be jsonl or csv")
        body = b"".join(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) + b"\n" for e in events)
        return body, "application/x-ndjson"


async def _feed_event(feed: LiveFeed, event_id: str) -> dict[str, Any] | None:
    item = feed.get(event_id)
    return None if item is None else dict(item.event)


def _tool_row(tool: Mapping[str, Any] | None, pin: PinView | None) -> dict[str, Any]:
    definition = dict(tool) if tool is not None else (dict(pin.pinned) if pin is not None else {})
    return {
        "name": str(definition.get("name", pin.tool if pin else "")),
        "description": str(definition.get("description", "")),
        "definition": definition,
        "pin": pin.to_dict() if pin is not None else None,
    }
