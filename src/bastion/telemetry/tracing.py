"""OpenTelemetry traces: a server span per client request, a child per pipeline stage and per upstream call.

Rules:
- Bastion uses its own `TracerProvider` (never the global one), so embedding Bastion or running several gateways
  in one process never mixes their spans, and the SDK servers in the same process stay untouched.
- Tracing off means no `Tracer` at all: the hooks in the session, the chain and the upstream connection test one
  attribute for None and do nothing else.
- A client's W3C `traceparent` (`params._meta`, else the HTTP header) becomes the parent of the request span; the
  upstream call's span context goes upstream in the forwarded request's `_meta.traceparent`.
- Stage spans are only made under a recording request span (a sampled-out trace costs no per-stage work).
- Attributes are names, ids and outcomes only: never argument values, results, tokens or full session ids.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

import anyio.to_thread
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bastion.errors import BastionError
from bastion.pipeline.context import INCOMING_TRACEPARENT, SESSION_ID_PREFIX
from bastion.telemetry.config import TracingConfig
from bastion.telemetry.propagation import meta_carrier

if TYPE_CHECKING:
    from bastion.pipeline.exchange import Exchange

logger = logging.getLogger("bastion.telemetry")

_PROPAGATOR: Final = TraceContextTextMapPropagator()
_NAMED_METHODS: Final = frozenset({"tools/call", "prompts/get"})
"""Methods whose `params.name` is a tool or prompt name (a span attribute; resource URIs are not used)."""

UpstreamCall = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""Sends the (possibly re-written) params upstream and returns the response message."""


def _error_reason(error: dict[str, Any] | None) -> str:
    data = error.get("data") if isinstance(error, dict) else None
    reason = data.get("reason") if isinstance(data, dict) else None
    return reason if isinstance(reason, str) and len(reason) <= 40 else "error"


class Tracer:
    """Makes Bastion's spans. Build with `from_config`; close with `aclose()` (flushes pending spans)."""

    def __init__(self, provider: TracerProvider, *, stage_spans: bool = True) -> None:
        self.provider = provider
        self.stage_spans = stage_spans
        """Whether the chain asks for a span per stage and phase."""
        self._tracer = provider.get_tracer("bastion")

    @classmethod
    def from_config(
        cls, config: TracingConfig, *, exporter: SpanExporter | None = None, instance: str = ""
    ) -> Tracer:
        """A tracer as `telemetry.tracing` says; `exporter` (tests: an in-memory one) overrides the config's."""
        resource = Resource.create(
            {"service.name": config.service_name, **({"service.instance.id": instance} if instance else {})}
        )
        if exporter is None and config.exporter == "none":
            sampler = ParentBased(ALWAYS_OFF)  # ids and propagation only; a sampled client trace still flows
        else:
            sampler = ParentBased(TraceIdRatioBased(config.sample_ratio))
        provider = TracerProvider(resource=resource, sampler=sampler)
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif config.exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            otlp = OTLPSpanExporter(
                endpoint=config.endpoint,
                headers={k: v.get_secret_value() for k, v in config.headers.items()},
                timeout=config.timeout_seconds,
            )
            provider.add_span_processor(BatchSpanProcessor(otlp))
        return cls(provider, stage_spans=config.stage_spans)

    async def aclose(self) -> None:
        """Flush and stop the exporters (in a worker thread: a batch export may block on the network)."""
        await anyio.to_thread.run_sync(self.provider.shutdown)

    # -- the request span (session hook) ------------------------------------------------------------------------

    @contextlib.contextmanager
    def request_span(self, exchange: Exchange) -> Iterator[None]:
        """Span one client request; sets `exchange.trace_id` before any stage or observer sees the exchange."""
        carrier = meta_carrier(exchange.params)
        if not carrier and (header := INCOMING_TRACEPARENT.get()) is not None:
            carrier = {"traceparent": header[0], **({"tracestate": header[1]} if header[1] else {})}
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        span = self._tracer.start_span(exchange.method, context=parent, kind=SpanKind.SERVER)
        exchange.trace_id = trace.format_trace_id(span.get_span_context().trace_id)
        recording = span.is_recording()
        if recording:
            span.set_attributes(
                {
                    "mcp.method": exchange.method,
                    "mcp.session": exchange.session.session_id[:SESSION_ID_PREFIX],
                    "mcp.transport": exchange.session.transport,
                    "bastion.exchange_id": exchange.exchange_id,
                }
            )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            otel_context.detach(token)
            if recording:
                self._finish_request(span, exchange)
            span.end()

    @staticmethod
    def _finish_request(span: trace.Span, exchange: Exchange) -> None:
        attributes: dict[str, str] = {"bastion.outcome": exchange.outcome}
        if exchange.server is not None:
            attributes["mcp.server"] = exchange.server
            if exchange.method in _NAMED_METHODS and exchange.target is not None:
                attributes["mcp.tool"] = exchange.target
                span.update_name(f"{exchange.method} {exchange.server}__{exchange.target}")
        if exchange.error is not None:
            attributes["error.type"] = _error_reason(exchange.error)
        span.set_attributes(attributes)
        if exchange.outcome == "error":
            span.set_status(Status(StatusCode.ERROR))

    # -- stage spans (chain hook) -------------------------------------------------------------------------------

    def records_stages(self) -> bool:
        """Whether the chain should span each stage now: stage spans are on and the request span records
        (checked once per phase, so a sampled-out request costs no per-stage work at all)."""
        return self.stage_spans and trace.get_current_span().is_recording()

    @contextlib.contextmanager
    def stage_span(self, stage: str, phase: str, exchange: Exchange) -> Iterator[None]:
        """Span one stage on one phase; its verdict is read back from the decisions it appended."""
        before = len(exchange.decisions)
        span = self._tracer.start_span(
            f"stage {stage} {phase}",
            kind=SpanKind.INTERNAL,
            attributes={"bastion.stage": stage, "bastion.phase": phase},
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            otel_context.detach(token)
            decisions = exchange.decisions
            if (
                len(decisions) > before
            ):  # a verdict other than Pass (each attribute write costs: skip the usual)
                verdict = decisions[-1].outcome
                span.set_attribute("bastion.verdict", verdict)
                if verdict == "error":
                    span.set_status(Status(StatusCode.ERROR))
            span.end()

    # -- upstream spans (connection hook) -----------------------------------------------------------------------

    async def upstream_call(
        self, server: str, method: str, params: dict[str, Any], call: UpstreamCall
    ) -> dict[str, Any]:
        """Send one request upstream inside a client span, its context in the request's `_meta.traceparent`."""
        current = trace.get_current_span()
        if not current.is_recording():
            if not current.get_span_context().is_valid:
                return await call(params)
            return await call(_with_trace_meta(params, otel_context.get_current()))  # sampled out: pass it on
        attributes = {"mcp.method": method, "mcp.server": server}
        name = params.get("name")
        if method in _NAMED_METHODS and isinstance(name, str):
            attributes["mcp.tool"] = name
        span = self._tracer.start_span(f"{method} {server}", kind=SpanKind.CLIENT, attributes=attributes)
        span_context = trace.set_span_in_context(span)
        token = otel_context.attach(span_context)
        try:
            reply = await call(_with_trace_meta(params, span_context))
            if "error" in reply:
                span.set_attribute("error.type", _error_reason(reply.get("error")))
                span.set_status(Status(StatusCode.ERROR))
            return reply
        except BastionError as exc:
            span.set_attribute("error.type", str(exc.reason))
            span.set_status(Status(StatusCode.ERROR))
            raise
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            raise
        finally:
            otel_context.detach(token)
            span.end()


def _with_trace_meta(params: dict[str, Any], ctx: otel_context.Context) -> dict[str, Any]:
    """A copy of `params` whose `_meta` carries the trace context `ctx` (the caller's dict is shared)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    if not carrier:
        return params
    meta = params.get("_meta")
    return {**params, "_meta": {**(meta if isinstance(meta, dict) else {}), **carrier}}
