"""`FlowStage`: session taint and flow rules on routed calls; `FlowCapture`: the raw result for fingerprints.

Placement (see runtime.py): `FlowStage` right before the guard, `FlowCapture` right after it. On the request path
the flow rules then judge calls that policy and rate limits let through; on the response path `FlowCapture` sees
the result as the upstream sent it (finding spans point into it) and `FlowStage` runs after the guardrails, so it
reads their findings and only results that reached the client taint the session.

Rules:
- Requests: `tools/call` only (tools are how data leaves). A `deny` is `Denied` (-31001, reason `policy_denied`)
  whose message and `data.chain` name the earlier calls that tainted the session (tool, time, finding kinds, event
  id), never a value; `ask` asks a human; `flag` records and lets it through.
- Responses: every routed call with a result. New marks are recorded as a `Flag` with a `flow/taint_<kind>` finding,
  so the audit event of the tainting result says so.
- Store failures follow `policy.flow.failure_mode` (closed by default).
- `policy.mode: monitor` turns a flow `deny` or `ask` into a `Flag` that says what would have happened.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

from bastion.errors import Denied, Reason
from bastion.guard.finding import Finding, Severity
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import BaseStage, FailureMode
from bastion.pipeline.verdicts import PASS, Ask, Flag, Reject, Verdict
from bastion.policy.flow import FlowPolicy, FlowVerdict, TaintMark
from bastion.policy.holder import PolicyHolder
from bastion.policy.taint import TaintStore

_RESULT_METHODS: Final = frozenset({"tools/call", "prompts/get", "resources/read"})


def _source(exchange: Exchange) -> str:
    if exchange.method == "resources/read":
        return f"{exchange.server}:{exchange.target}"
    return f"{exchange.server}__{exchange.target}"


def chain_data(chain: tuple[TaintMark, ...]) -> list[dict[str, Any]]:
    """The chain as refusal data: what tainted the session, without any value."""
    return [{k: v for k, v in m.to_dict().items() if k != "principal"} for m in chain]


class FlowCapture(BaseStage):
    """Keeps the upstream's result, before any redaction, for `FlowStage` (by exchange id, dropped after)."""

    name = "flow-capture"

    def __init__(self) -> None:
        self.raw: dict[str, Any] = {}

    async def on_response(self, exchange: Exchange) -> Verdict:
        if exchange.result is not None and exchange.method in _RESULT_METHODS and exchange.server is not None:
            self.raw[exchange.exchange_id] = exchange.result
        return PASS


class FlowStage(BaseStage):
    """Applies `policy.flow` from the policy in force (reloads take effect at once)."""

    name = "flow"

    def __init__(self, policy: PolicyHolder, taint: TaintStore, *, references: Mapping[str, str]) -> None:
        """Build the stage.

        Args:
            policy: the policy holder (its engine's `flow`).
            taint: where sessions' taint lives (the gateway's state store).
            references: server name -> reference server marker (`labels.references_from_servers`).
        """
        self.policy = policy
        self.taint = taint
        self.references = dict(references)
        self.capture = FlowCapture()

    def _current(self) -> FlowPolicy:
        """The flow policy in force; also follows its `failure_mode` and `ttl_seconds` across reloads."""
        flow = self.policy.engine.flow
        self.failure_mode = FailureMode.OPEN if flow.config.failure_mode == "open" else FailureMode.CLOSED
        self.taint.ttl = flow.config.ttl_seconds
        return flow

    async def on_request(self, exchange: Exchange) -> Verdict:
        flow = self._current()
        if not flow.enabled or exchange.method != "tools/call" or exchange.server is None:
            return PASS
        server, tool = exchange.server, exchange.target or ""
        taint = await self.taint.load(exchange.session.session_id)
        labels = flow.labels(self.references).of(server, tool)
        exchange.annotations[self.name] = {"labels": list(labels), "taint": taint.kinds}
        if not taint.marks:
            return PASS
        verdict = flow.judge(
            server=server,
            tool=tool,
            labels=labels,
            args=exchange.arguments,
            principal=self.policy.engine.principal_doc(exchange.session.principal),
            taint=taint,
        )
        return PASS if verdict is None else self._verdict(exchange, verdict)

    def _verdict(self, exchange: Exchange, verdict: FlowVerdict) -> Verdict:
        finding = Finding(
            detector="flow",
            type="data_leak" if verdict.rule == "data-rule" else "flow_rule",
            severity=Severity.HIGH,
            action="block" if verdict.action == "deny" else verdict.action,
        )
        exchange.annotations[self.name] = {
            **exchange.annotations.get(self.name, {}),
            "rule": verdict.rule,
            "action": verdict.action,
            "chain": chain_data(verdict.chain),
        }
        name = exchange.params.get("name") or f"{exchange.server}__{exchange.target}"
        if self.policy.engine.config.mode == "monitor":
            return Flag(
                findings=(finding,), explanation=f"would {verdict.action} (monitor): {verdict.explanation}"
            )
        if verdict.action == "deny":
            error = Denied(
                f"Refused by Bastion flow policy ({verdict.rule}) on {name}: {verdict.explanation}",
                reason=Reason.POLICY_DENIED,
                data={"rule": verdict.rule, "chain": chain_data(verdict.chain)},
            )
            return Reject(error=error, explanation=verdict.explanation, findings=(finding,))
        if verdict.action == "ask":
            question = f"Bastion flow policy ({verdict.rule}) asks before {name} runs: {verdict.explanation}. Approve?"
            return Ask(question=question, explanation=verdict.explanation, findings=(finding,))
        return Flag(findings=(finding,), explanation=verdict.explanation)

    async def on_response(self, exchange: Exchange) -> Verdict:
        raw = self.capture.raw.pop(exchange.exchange_id, None)
        flow = self._current()
        if not flow.enabled or exchange.server is None or exchange.result is None:
            return PASS
        if exchange.method not in _RESULT_METHODS:
            return PASS
        tool = exchange.target or ""
        labels = (
            flow.labels(self.references).of(exchange.server, tool) if exchange.method == "tools/call" else ()
        )
        every = enumerate((d, f) for d in exchange.decisions for f in d.findings)  # the audit event's order
        judged = [(n, f) for n, (d, f) in every if d.phase == "response" and d.stage != self.name]
        findings = [f for _, f in judged]
        observed = flow.observe(
            tool=_source(exchange),
            labels=labels,
            findings=findings,
            raw=raw if raw is not None else exchange.result,
            sent=exchange.arguments if exchange.method == "tools/call" else exchange.params.get("arguments"),
            event=exchange.exchange_id,
            principal=exchange.session.principal.name,
            now=time.time(),
            finding_ids=[f"{exchange.exchange_id}#{n}" for n, _ in judged],
        )
        if not observed.marks:
            return PASS
        session_id = exchange.session.session_id
        known = len((await self.taint.load(session_id)).fingerprints) if observed.values else 0
        await self.taint.add(session_id, observed.marks, observed.values, known=known)
        taints = tuple(
            Finding(detector="flow", type=f"taint_{m.kind}", severity=Severity.LOW, action="flag")
            for m in observed.marks
        )
        return Flag(
            findings=taints, explanation="session tainted " + "; ".join(m.describe() for m in observed.marks)
        )

    async def on_exchange(self, exchange: Exchange) -> None:
        """Observer hook: drop a captured result whose response path stopped before this stage."""
        self.capture.raw.pop(exchange.exchange_id, None)
