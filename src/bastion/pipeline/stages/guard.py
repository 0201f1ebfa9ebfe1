"""`GuardStage`: the guardrails on routed calls, last on the request path and first on the response path.

What is inspected (the guard's `Direction` in brackets):
- `tools/call` arguments [request], validated against the tool's inputSchema; the tool result [response].
- `prompts/get` arguments [request]; the prompt's messages [response].
- `resources/read` and `resources/subscribe` URIs [request]; the resource contents [response].
- `completion/complete` argument and context [request]; the completion values [response].
Lists are not inspected here: the listing chain (`listing.py`) screens them before the catalogue caches them.

Rules:
- `block` is a JSON-RPC error on every method and in both directions: `Denied` (-31001, reason
  `guardrail_blocked`), whose message names detector, type and JSON path and whose `data.findings` lists them, so
  a model can read why; never a fake tool result. One shape for every refusal keeps audit outcomes (`deny`),
  metrics and client handling the same as for policy denials.
- `redact` is a `Mutate` of the params (request) or result (response); `flag` is a `Flag`; `ask` is an `Ask`,
  which the chain turns into an elicitation or an approvals-queue entry (no answer: denied). Redactions found
  along with an `ask` are applied before the question is asked, so an approval never releases a secret.
- Findings carry detector, type, severity, confidence, path and action; never the matched text.
- `Guard.inspect` is synchronous CPU work and runs inline: a hop to a worker thread adds about a quarter of a
  millisecond and buys no parallelism (Python regexes hold the GIL). `bench/guard_stage.py` measures both.
- A direction with no active detector costs one attribute lookup.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any, Final

from bastion.errors import Denied, Reason
from bastion.guard.actions import Action
from bastion.guard.engine import Guard, GuardResult
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import BaseStage, FailureMode
from bastion.pipeline.verdicts import PASS, Ask, Flag, Mutate, Reject, Verdict

SchemaLookup = Callable[[str, str], dict[str, Any] | None]
"""(server, upstream tool name) -> the tool's inputSchema, when known."""

_RESPONSE_METHODS: Final = frozenset({"tools/call", "prompts/get", "resources/read", "completion/complete"})
"""Methods whose results carry content from the server."""

_FINDINGS_IN_MESSAGE: Final = 3
"""Findings named in an error message or a question (all of them are in `data` and the audit record)."""


def _summary(result: GuardResult) -> str:
    parts = [f"{f.detector}/{f.type} at {f.path}" for f in result.findings[:_FINDINGS_IN_MESSAGE]]
    more = len(result.findings) - len(parts)
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def _public_name(exchange: Exchange) -> str:
    if exchange.method in ("tools/call", "prompts/get"):
        name = exchange.params.get("name")
        return name if isinstance(name, str) else f"{exchange.server}__{exchange.target}"
    return exchange.target or exchange.server or ""


class GuardStage(BaseStage):
    """Runs the compiled `Guard` over arguments and results of routed calls."""

    name = "guard"

    def __init__(self, guard: Guard, *, schemas: SchemaLookup | None = None) -> None:
        """Build the stage.

        Args:
            guard: the compiled guardrails (`Guard(config.guardrails)`).
            schemas: where a tool's inputSchema comes from (the tool screen, which sees every definition).
        """
        self.guard = guard
        self.schemas = schemas
        self.failure_mode = FailureMode.OPEN if guard.config.failure_mode == "open" else FailureMode.CLOSED
        self._request = guard.active("request")
        self._response = guard.active("response")

    async def on_request(self, exchange: Exchange) -> Verdict:
        if not self._request or exchange.server is None:
            return PASS
        params = exchange.params
        method = exchange.method
        if method == "tools/call":
            tool = exchange.target or ""
            arguments = params.get("arguments")
            schema = self.schemas(exchange.server, tool) if self.schemas is not None else None
            payload: dict[str, Any] = arguments if isinstance(arguments, dict) else {}
            result = self.guard.inspect("request", payload, server=exchange.server, tool=tool, schema=schema)
            return self._verdict(exchange, "request", result, payload, lambda p: {**params, "arguments": p})
        if method == "prompts/get":
            arguments = params.get("arguments")
            if not isinstance(arguments, dict) or not arguments:
                return PASS
            result = self.guard.inspect("request", arguments, server=exchange.server)
            return self._verdict(exchange, "request", result, arguments, lambda p: {**params, "arguments": p})
        if method in ("resources/read", "resources/subscribe"):
            uri = params.get("uri")
            if not isinstance(uri, str):
                return PASS
            payload = {"uri": uri}
            result = self.guard.inspect("request", payload, server=exchange.server)
            return self._verdict(exchange, "request", result, payload, lambda p: {**params, **p})
        if method == "completion/complete":
            payload = {k: params[k] for k in ("argument", "context") if k in params}
            if not payload:
                return PASS
            result = self.guard.inspect("request", payload, server=exchange.server)
            return self._verdict(exchange, "request", result, payload, lambda p: {**params, **p})
        return PASS

    async def on_response(self, exchange: Exchange) -> Verdict:
        body = exchange.result
        if not self._response or exchange.server is None or body is None:
            return PASS
        if exchange.method not in _RESPONSE_METHODS:
            return PASS
        tool = exchange.target if exchange.method == "tools/call" else None
        result = self.guard.inspect("response", body, server=exchange.server, tool=tool)
        return self._verdict(exchange, "response", result, body, lambda p: p)

    def _verdict(
        self,
        exchange: Exchange,
        phase: str,
        result: GuardResult,
        inspected: Any,
        rebuild: Callable[[Any], dict[str, Any]],
    ) -> Verdict:
        action = result.action
        if action is Action.ALLOW or not result.findings:
            return PASS
        findings = result.findings
        explanation = f"{phase}: {result.explanation()}"
        exchange.annotations[self.name] = {
            "phase": phase,
            "action": str(action),
            "findings": [f.to_dict() for f in findings],
        }
        if action is Action.BLOCK:
            where = "arguments" if phase == "request" else "result"
            error = Denied(
                f"Blocked by Bastion guardrails ({where} of {_public_name(exchange)}): {_summary(result)}",
                reason=Reason.GUARDRAIL_BLOCKED,
                data={"direction": phase, "findings": [f.to_dict() for f in findings]},
            )
            return Reject(error=error, explanation=explanation, findings=findings)
        if action is Action.REDACT:
            return Mutate(body=rebuild(result.payload), findings=findings, explanation=explanation)
        if action is Action.ASK:
            if result.payload is not inspected:
                # Redactions found alongside apply whatever the human answers (the chain records them
                # with the ask decision's findings).
                self._apply(exchange, phase, rebuild, result.payload)
            where = "send these arguments to" if phase == "request" else "return this result from"
            question = (
                f"Bastion guardrails ask before they {where} {_public_name(exchange)}: {_summary(result)}. "
                "Approve?"
            )
            return Ask(
                question=question,
                findings=findings,
                explanation=explanation,
                ask_client=self._asks_client(exchange),
            )
        return Flag(findings=findings, explanation=explanation)

    def _asks_client(self, exchange: Exchange) -> bool:
        """Whether an override naming this call's server and tool opted into asking the client's user."""
        server, tool = exchange.server or "", exchange.target or ""
        return any(
            rule.ask_client
            and (not rule.servers or any(fnmatch.fnmatchcase(server, g) for g in rule.servers))
            and (not rule.tools or any(fnmatch.fnmatchcase(tool, g) for g in rule.tools))
            for rule in self.guard.config.overrides
        )

    @staticmethod
    def _apply(
        exchange: Exchange, phase: str, rebuild: Callable[[Any], dict[str, Any]], payload: Any
    ) -> None:
        if phase == "request":
            exchange.params = rebuild(payload)
        else:
            exchange.result = rebuild(payload)
