"""`refusals: result`: a refused `tools/call` of a tool the caller can see comes back as an `isError` result.

Why: SDK clients (the Python SDK, LangChain) raise on a JSON-RPC error, so the model never reads why its call was
refused. A tool execution error is what the spec recommends for a call the model can correct (2025-11-25
changelog), so the model reads who refused and what it may do instead.

Rules:
- Only `tools/call`, only guardrail blocks, policy denials and flow-rule denials, and only of a tool the caller can see: a tool that
  policy hides, and a name that does not exist, keep failing with the very same JSON-RPC error.
- The text names the detector/type (and where) or the policy rule, never a matched value or an argument.
- With `refusals: error`, every refusal stays a JSON-RPC error, as before.
"""

from __future__ import annotations

from typing import Any, Final

from bastion.errors import BastionError, Reason
from bastion.pipeline.exchange import Exchange
from bastion.types import JsonDict

META_REFUSAL: Final = "dev.bastion/refusal"
"""Result `_meta` key saying who refused (for clients and tests that read structure, not prose)."""
MAX_NAMED_FINDINGS: Final = 5


def refusal_result(exchange: Exchange, error: BastionError, mode: str) -> JsonDict | None:
    """The `isError` result that stands in for `error`, or None when the error must stay an error."""
    if mode != "result" or exchange.method != "tools/call":
        return None
    tool = exchange.params.get("name")
    tool = tool if isinstance(tool, str) else exchange.target or ""
    if error.reason is Reason.GUARDRAIL_BLOCKED:
        not_approved = any(d.outcome == "denied" for d in exchange.decisions)
        return _guardrail(tool, error.data or {}, not_approved=not_approved)
    if error.reason is Reason.POLICY_DENIED and isinstance(error.data, dict) and "chain" in error.data:
        return _flow(
            error
        )  # a flow rule: the tool is visible (authorize let it through), the chain refused it
    authorize = exchange.annotations.get("authorize")
    if isinstance(authorize, dict) and authorize.get("visible") and not authorize.get("allowed", True):
        return _policy(tool, str(authorize.get("rule") or "default"))
    return None


def _guardrail(tool: str, data: dict[str, Any], *, not_approved: bool) -> JsonDict:
    found = [f for f in data.get("findings") or [] if isinstance(f, dict)]
    # Name what refused the call: the blocking findings, not those that were only flagged beside them.
    findings = [f for f in found if f.get("action") == "block"] or found
    if not_approved:  # a guardrail asked a human, who did not approve
        text = (
            f"Bastion refused this call to {tool}: it needs human approval and was not approved. "
            "Do not retry it as is; ask the user how to proceed."
        )
        return _result(text, {"by": "guardrail", "approval": "denied"})
    named = [f"{f.get('detector')}/{f.get('type')} at {f.get('path')}" for f in findings[:MAX_NAMED_FINDINGS]]
    where = "arguments" if data.get("direction") == "request" else "result"
    if where == "arguments":
        advice = (
            "Do not retry with the same content. Remove or rephrase what was flagged, or ask the user to get "
            "the call approved by an operator."
        )
    else:
        advice = "The tool's result was withheld. Do not call it again for the same data; tell the user."
    text = (
        f"Bastion refused this call to {tool}: its {where} tripped the guardrails "
        f"({', '.join(named) or 'unspecified'}). {advice}"
    )
    detectors = sorted({str(f.get("detector")) for f in findings})
    return _result(text, {"by": "guardrail", "direction": where, "detectors": detectors})


def _policy(tool: str, rule: str) -> JsonDict:
    text = (
        f"Bastion policy rule '{rule}' does not allow this call to {tool} with these arguments. "
        "Try other arguments within your permissions, use another tool, or ask the user to have an operator "
        "change the policy."
    )
    return _result(text, {"by": "policy", "rule": rule})


def _flow(error: BastionError) -> JsonDict:
    data = error.data or {}
    text = (
        f"{error.message}. Do not retry this call in this session; ask the user to have an operator approve it, "
        "or finish the task without sending this data out."
    )
    return _result(text, {"by": "flow", "rule": data.get("rule"), "chain": data.get("chain")})


def _result(text: str, why: JsonDict) -> JsonDict:
    return {"content": [{"type": "text", "text": text}], "isError": True, "_meta": {META_REFUSAL: why}}
