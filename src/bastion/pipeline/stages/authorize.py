"""Identity stages: `AuthenticateStage` (no anonymous calls when auth is on), `AuthorizeStage` (policy), and
`filter_listing` for list results.

Rules:
- A denied tool, prompt or resource gets exactly the error an unknown one gets (`InvalidParams`,
  "Unknown tool: NAME"), so a caller cannot probe what exists; the real reason is in the decision for audit.
- Calls routed to a server without a named target (tasks) are refused with `Denied` (-31001).
- Monitor decisions are `Flag`s with a `policy` finding; the call proceeds.
- Lists are filtered by `PolicyEngine.visible`: what a caller may not use is absent from its lists.
- `logging/setLevel` more verbose than the caller's roles allow (`policy.log_level`, `roles.<r>.log_level`) is
  refused with `Denied` (-31001); the session keeps its level.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from bastion.errors import AuthError, BastionError, Denied, InvalidParams, Reason
from bastion.guard.finding import Finding, Severity
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import BaseStage, FailureMode
from bastion.pipeline.verdicts import PASS, Flag, Reject, Verdict
from bastion.policy.engine import NAMESPACE_SEPARATOR, Kind, PolicyEngine
from bastion.policy.holder import PolicyHolder
from bastion.types import Principal

_KIND_OF_METHOD: Final[dict[str, Kind]] = {
    "tools/call": "tool",
    "prompts/get": "prompt",
    "resources/read": "resource",
    "resources/subscribe": "resource",
    "resources/unsubscribe": "resource",
    "tasks/get": "server",
    "tasks/result": "server",
    "tasks/cancel": "server",
}
"""Routed methods and what the policy judges them as (`completion/complete` depends on its `ref`)."""

LIST_KINDS: Final[dict[str, Kind]] = {
    "tools/list": "tool",
    "prompts/list": "prompt",
    "resources/list": "resource",
    "resources/templates/list": "resource",
}
"""List methods whose items `filter_listing` filters."""


class AuthenticateStage(BaseStage):
    """Refuses every message of an unauthenticated session when authentication is required.

    The HTTP middleware already refuses requests without credentials; this stage is the backstop that keeps a
    wiring mistake from letting an anonymous session reach policy, detectors or upstreams.
    """

    name = "authenticate"
    failure_mode = FailureMode.CLOSED

    def __init__(self, *, required: bool) -> None:
        self.required = required

    async def on_request(self, exchange: Exchange) -> Verdict:
        if self.required and exchange.session.principal.method == "none":
            return Reject(
                error=AuthError("authentication required", data={"authFailure": "missing"}),
                explanation="unauthenticated session",
            )
        return PASS


def _target(exchange: Exchange) -> tuple[Kind, str, str] | None:
    """(kind, name for the policy, name the client used) of a routed exchange, or None when not judged."""
    if exchange.server is None or exchange.target is None:
        return None
    kind = _KIND_OF_METHOD.get(exchange.method)
    if exchange.method == "completion/complete":
        ref = exchange.params.get("ref")
        ref_type = ref.get("type") if isinstance(ref, dict) else None
        kind = "prompt" if ref_type == "ref/prompt" else "resource" if ref_type == "ref/resource" else None
    if kind is None:
        return None
    public = exchange.params.get("name") if kind in ("tool", "prompt") else exchange.target
    if exchange.method == "completion/complete":
        ref = exchange.params["ref"]
        public = ref.get("name") if kind == "prompt" else ref.get("uri")
    return kind, exchange.target, public if isinstance(public, str) else exchange.target


def _unknown(kind: Kind, public: str) -> BastionError:
    """The very error routing raises for a name it does not know (see routing/catalog.py)."""
    if kind == "resource":
        return InvalidParams(f"Unknown resource: {public}", data={"uri": public})
    if kind == "server":
        return Denied("Denied by policy", reason=Reason.POLICY_DENIED)
    return InvalidParams(f"Unknown {kind}: {public}")


class AuthorizeStage(BaseStage):
    """Applies the policy in force (read from the holder on every call, so reloads take effect at once)."""

    name = "authorize"
    failure_mode = FailureMode.CLOSED

    def __init__(self, policy: PolicyHolder) -> None:
        self.policy = policy

    async def on_request(self, exchange: Exchange) -> Verdict:
        if exchange.method == "logging/setLevel":
            return self._log_level(exchange)
        target = _target(exchange)
        if target is None:
            return PASS
        kind, name, public = target
        server = exchange.server or ""
        decision = self.policy.engine.decide(
            exchange.session.principal, kind, server, name, exchange.arguments if kind == "tool" else None
        )
        exchange.annotations[self.name] = {**decision.to_dict(), "kind": kind}
        if not decision.allowed:
            # Whether the caller can see what it was refused decides if it may be told why (`refusals.py`).
            exchange.annotations[self.name]["visible"] = self.policy.engine.visible(
                exchange.session.principal, kind, server, name
            )
            finding = Finding(detector="policy", type="denied", severity=Severity.MEDIUM, action="block")
            return Reject(error=_unknown(kind, public), explanation=decision.explanation, findings=(finding,))
        if decision.monitor:
            finding = Finding(detector="policy", type="would_deny", severity=Severity.LOW, action="flag")
            return Flag(findings=(finding,), explanation=decision.explanation)
        return PASS

    def _log_level(self, exchange: Exchange) -> Verdict:
        """`logging/setLevel`: upstream logs can carry request data, so policy decides who may raise them."""
        level = str(exchange.params.get("level"))
        decision = self.policy.engine.may_set_log_level(exchange.session.principal, level)
        exchange.annotations[self.name] = {**decision.to_dict(), "kind": "logging"}
        if not decision.allowed:
            finding = Finding(detector="policy", type="denied", severity=Severity.MEDIUM, action="block")
            error = Denied(decision.explanation, reason=Reason.POLICY_DENIED)
            return Reject(error=error, explanation=decision.explanation, findings=(finding,))
        if decision.monitor:
            finding = Finding(detector="policy", type="would_deny", severity=Severity.LOW, action="flag")
            return Flag(findings=(finding,), explanation=decision.explanation)
        return PASS


def split_namespaced(name: str) -> tuple[str, str] | None:
    """`github__create_issue` -> (`github`, `create_issue`); None without a separator."""
    server, sep, local = name.partition(NAMESPACE_SEPARATOR)
    return (server, local) if sep and server and local else None


def filter_listing(
    engine: PolicyEngine,
    principal: Principal,
    method: str,
    items: Iterable[dict[str, Any]],
    *,
    split: Callable[[str], tuple[str, str] | None] = split_namespaced,
    server_of_uri: Callable[[str], str | None] = lambda _uri: None,
) -> list[dict[str, Any]]:
    """Only the items of a list result that `principal` may see.

    Args:
        engine: the policy in force (`holder.engine`).
        principal: the caller (`exchange.session.principal`).
        method: `tools/list`, `prompts/list`, `resources/list` or `resources/templates/list`.
        items: the merged items, tool and prompt names namespaced as clients see them.
        split: maps a public tool/prompt name to (server, upstream name); the catalog's `split_name`.
        server_of_uri: the server that listed a resource URI or template (unknown: "").

    Returns:
        The visible items, in their original order. Items that cannot be attributed are hidden.
    """
    kind = LIST_KINDS.get(method)
    if kind is None:
        return list(items)
    visible: list[dict[str, Any]] = []
    for item in items:
        if kind == "resource":
            uri = item.get("uri", item.get("uriTemplate"))
            if isinstance(uri, str) and engine.visible(principal, kind, server_of_uri(uri) or "", uri):
                visible.append(item)
            continue
        name = item.get("name")
        parts = split(name) if isinstance(name, str) else None
        if parts is not None and engine.visible(principal, kind, parts[0], parts[1]):
            visible.append(item)
    return visible
