"""The chain runner: applies stages to an exchange in fixed order, then in reverse for the response.

Rules:
- Request path runs stages in order; response path runs them in reverse (like Envoy's filter chain).
- The first `Reject` ends the request path: nothing reaches the upstream.
- `Mutate` replaces `exchange.params` (request) or `exchange.result` (response) for later stages.
- `Ask` asks a human through `exchange.asker`; no asker, a refusal or a failed ask is a `Reject`.
- A stage that raises follows its `failure_mode`; the default, `closed`, rejects the message.
- Every verdict is appended to `exchange.decisions` so audit can explain the outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from bastion.errors import BastionError, Denied, InternalError, Reason
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import FailureMode, Stage
from bastion.pipeline.verdicts import Ask, Decision, Flag, Mutate, Pass, Reject, Verdict

logger = logging.getLogger("bastion.pipeline")


class StageTracer(Protocol):
    """What the chain needs of tracing (telemetry's `Tracer` is one); the pipeline does not know telemetry."""

    def request_span(self, exchange: Exchange) -> AbstractContextManager[None]:
        """A span around one client request (the session opens it; sets `exchange.trace_id`)."""
        ...

    def records_stages(self) -> bool:
        """Whether to span each stage of the current request."""
        ...

    def stage_span(self, stage: str, phase: str, exchange: Exchange) -> AbstractContextManager[None]:
        """A span around one stage on one phase."""
        ...


class Pipeline:
    """An ordered, immutable list of stages."""

    def __init__(self, stages: Sequence[Stage] = ()) -> None:
        self.stages: tuple[Stage, ...] = tuple(stages)
        self.tracer: StageTracer | None = None
        """Set by telemetry when tracing is on: spans per stage (and the session's request span)."""

    def __bool__(self) -> bool:
        return bool(self.stages)

    async def run_request(self, exchange: Exchange) -> BastionError | None:
        """Run the request path. Returns the error to answer with, or None to forward the request."""
        traced = self.tracer is not None and self.tracer.records_stages()
        apply = self._traced_apply if traced else self._apply
        for stage in self.stages:
            error = await apply(stage, "request", exchange)
            if error is not None:
                return error
        return None

    async def run_response(self, exchange: Exchange) -> BastionError | None:
        """Run the response path in reverse order. Returns an error to answer with instead of the result."""
        traced = self.tracer is not None and self.tracer.records_stages()
        apply = self._traced_apply if traced else self._apply
        for stage in reversed(self.stages):
            error = await apply(stage, "response", exchange)
            if error is not None:
                return error
        return None

    async def _traced_apply(self, stage: Stage, phase: str, exchange: Exchange) -> BastionError | None:
        tracer = self.tracer
        if tracer is None:
            return await self._apply(stage, phase, exchange)
        with tracer.stage_span(stage.name, phase, exchange):
            return await self._apply(stage, phase, exchange)

    async def _apply(self, stage: Stage, phase: str, exchange: Exchange) -> BastionError | None:
        try:
            if phase == "request":
                verdict: Verdict = await stage.on_request(exchange)
            else:
                verdict = await stage.on_response(exchange)
        except Exception as exc:  # the stage runner is a fault boundary (STYLE.md section 3)
            logger.exception("stage %s failed on %s %s", stage.name, phase, exchange.method)
            explanation = f"stage {stage.name} failed: {type(exc).__name__}"
            if stage.failure_mode is FailureMode.OPEN:
                exchange.decisions.append(
                    Decision(
                        stage=stage.name,
                        phase=phase,
                        outcome="error",
                        explanation=explanation + " (fail-open)",
                    )
                )
                return None
            exchange.decisions.append(
                Decision(
                    stage=stage.name, phase=phase, outcome="error", explanation=explanation + " (fail-closed)"
                )
            )
            exchange.outcome = "error"
            return (
                exc
                if isinstance(exc, BastionError)
                else InternalError("a security check could not be completed", data={"stage": stage.name})
            )
        return await self._verdict(stage, phase, exchange, verdict)

    async def _verdict(
        self, stage: Stage, phase: str, exchange: Exchange, verdict: Verdict
    ) -> BastionError | None:
        name = stage.name
        if isinstance(verdict, Pass):
            return None
        if isinstance(verdict, Mutate):
            exchange.decisions.append(
                Decision(
                    stage=name,
                    phase=phase,
                    outcome="mutate",
                    explanation=verdict.explanation,
                    findings=verdict.findings,
                )
            )
            if phase == "request":
                exchange.params = verdict.body
            else:
                exchange.result = verdict.body
            if exchange.outcome == "allow":
                exchange.outcome = "redact"
            return None
        if isinstance(verdict, Flag):
            exchange.decisions.append(
                Decision(
                    stage=name,
                    phase=phase,
                    outcome="flag",
                    explanation=verdict.explanation,
                    findings=verdict.findings,
                )
            )
            if exchange.outcome == "allow":
                exchange.outcome = "flag"
            return None
        if isinstance(verdict, Reject):
            exchange.decisions.append(
                Decision(
                    stage=name,
                    phase=phase,
                    outcome="reject",
                    explanation=verdict.explanation,
                    findings=verdict.findings,
                )
            )
            exchange.outcome = "deny"
            return verdict.error
        if isinstance(verdict, Ask):
            return await self._ask(name, phase, exchange, verdict)
        raise TypeError(f"stage {name} returned {verdict!r}, not a verdict")  # a programming error

    async def _ask(self, name: str, phase: str, exchange: Exchange, verdict: Ask) -> BastionError | None:
        approved = False
        exchange.ask_client = verdict.ask_client
        if exchange.asker is not None:
            try:
                approved = await exchange.asker(verdict.question)
            except Exception:  # a failed ask is a refusal, never a pass
                logger.exception("asking a human failed for stage %s", name)
        outcome = "approved" if approved else "denied"
        exchange.decisions.append(
            Decision(
                stage=name,
                phase=phase,
                outcome=outcome,
                explanation=verdict.explanation,
                findings=verdict.findings,
            )
        )
        if approved:
            return None
        exchange.outcome = "deny"
        return Denied("the call needs human approval and was not approved", reason=Reason.GUARDRAIL_BLOCKED)
