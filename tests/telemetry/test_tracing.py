"""OpenTelemetry traces through a real in-process gateway, exported to the SDK's in-memory exporter."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bastion.auth.principal import Principal
from bastion.guard.finding import Finding
from bastion.pipeline.context import INCOMING_TRACEPARENT
from bastion.pipeline.exchange import Exchange, SessionInfo
from bastion.pipeline.stage import BaseStage
from bastion.pipeline.verdicts import Flag, Verdict
from bastion.telemetry.config import TelemetryConfig, TracingConfig
from bastion.telemetry.propagation import TraceContextMiddleware, trace_headers, valid_traceparent
from bastion.telemetry.tracing import Tracer
from bastion.testing import client_transport, running_gateway
from tests.telemetry.conftest import attach, serve_asgi

pytestmark = pytest.mark.anyio

SECRET_ARGUMENT = "sk-live-arg-0a1b2c3d4e5f"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


class Named(BaseStage):
    def __init__(self, name: str) -> None:
        self.name = name


class Flagging(BaseStage):
    name = "guard"

    async def on_request(self, exchange: Exchange) -> Verdict:
        return Flag(findings=(Finding(detector="secrets", type="api_key", action="flag"),))


class TraceIds:
    """An observer that keeps each exchange's trace id (what audit will record)."""

    def __init__(self) -> None:
        self.trace_ids: list[str] = []

    async def on_exchange(self, exchange: Exchange) -> None:
        if exchange.method == "tools/call":  # the SDK client also lists tools on its own
            self.trace_ids.append(exchange.trace_id)


def upstream(seen: list[dict[str, Any]]) -> MCPServer:
    server = MCPServer("traced")

    @server.tool()
    def lookup(query: str, ctx: Context) -> str:
        """Remember the request's `_meta`, answer."""
        seen.append(dict(ctx.request_context.meta or {}))
        return "found"

    return server


def config(**tracing: Any) -> TelemetryConfig:
    return TelemetryConfig(tracing=TracingConfig(enabled=True, **tracing)).model_copy(
        update={"anomaly": TelemetryConfig().anomaly.model_copy(update={"enabled": False})}
    )


def by_name(spans: tuple[ReadableSpan, ...] | list[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


async def test_a_call_continues_the_client_trace_with_stage_and_upstream_children() -> None:
    exporter = InMemorySpanExporter()
    seen: list[dict[str, Any]] = []
    ids = TraceIds()
    stages = [Named("authenticate"), Flagging()]
    async with running_gateway({"svc": upstream(seen)}, stages=stages, observers=[ids]) as gw:
        attach(gw, config(), span_exporter=exporter)
        async with Client(client_transport(gw), mode="legacy") as client:
            exporter.clear()
            seen.clear()
            meta: Any = {"traceparent": CLIENT_TRACEPARENT}
            result = await client.call_tool("svc__lookup", {"query": SECRET_ARGUMENT}, meta=meta)
            assert result.content[0].text == "found"  # type: ignore[union-attr]
    request = by_name(exporter.get_finished_spans())["tools/call svc__lookup"]
    in_trace = [s for s in exporter.get_finished_spans() if s.context.trace_id == request.context.trace_id]
    named = by_name(in_trace)
    assert request.kind is SpanKind.SERVER
    assert format_trace_id(request.context.trace_id) == CLIENT_TRACE
    assert request.parent is not None and format_span_id(request.parent.span_id) == CLIENT_SPAN
    assert (
        dict(request.attributes or {}).items()
        >= {
            "mcp.method": "tools/call",
            "mcp.server": "svc",
            "mcp.tool": "lookup",
            "bastion.outcome": "flag",
        }.items()
    )
    stage_names = {n for n in named if n.startswith("stage ")}
    assert stage_names == {
        "stage authenticate request",
        "stage guard request",
        "stage authenticate response",
        "stage guard response",
    }
    for name in stage_names:
        assert named[name].parent is not None and named[name].parent.span_id == request.context.span_id
    assert (named["stage guard request"].attributes or {})["bastion.verdict"] == "flag"
    assert "bastion.verdict" not in (named["stage guard response"].attributes or {})  # a pass: nothing to say
    # Every upstream request made while serving the call is a client child (the catalogue may list first).
    calls = {s.name: s for s in in_trace if s.kind is SpanKind.CLIENT}
    assert set(calls) <= {"tools/call svc", "tools/list svc"}
    call = calls["tools/call svc"]
    assert call.parent is not None and call.parent.span_id == request.context.span_id
    assert dict(call.attributes or {}).items() >= {"mcp.server": "svc", "mcp.tool": "lookup"}.items()
    # The upstream saw our client span as its parent, in the same trace.
    assert seen[-1]["traceparent"] == f"00-{CLIENT_TRACE}-{format_span_id(call.context.span_id)}-01"
    assert ids.trace_ids[-1] == CLIENT_TRACE
    for span in exporter.get_finished_spans():
        assert SECRET_ARGUMENT not in f"{span.name} {dict(span.attributes or {})} {span.events}"


async def test_stage_spans_can_be_switched_off_keeping_request_and_upstream_spans() -> None:
    exporter = InMemorySpanExporter()
    async with running_gateway({"svc": upstream([])}, stages=[Named("authenticate")]) as gw:
        attach(gw, config(stage_spans=False), span_exporter=exporter)
        async with Client(client_transport(gw), mode="legacy") as client:
            await client.call_tool("svc__lookup", {"query": "x"})
    names = {s.name for s in exporter.get_finished_spans()}
    assert "tools/call svc__lookup" in names and "tools/call svc" in names
    assert not any(n.startswith("stage ") for n in names)


async def test_without_a_client_traceparent_a_new_trace_starts_and_reaches_the_upstream() -> None:
    exporter = InMemorySpanExporter()
    seen: list[dict[str, Any]] = []
    ids = TraceIds()
    async with running_gateway({"svc": upstream(seen)}, observers=[ids]) as gw:
        attach(gw, config(), span_exporter=exporter)
        async with Client(client_transport(gw), mode="legacy") as client:
            await client.call_tool("svc__lookup", {"query": "x"})
    request = by_name(exporter.get_finished_spans())["tools/call svc__lookup"]
    assert request.parent is None
    trace_id = format_trace_id(request.context.trace_id)
    assert ids.trace_ids[-1] == trace_id
    assert seen[-1]["traceparent"].split("-")[1] == trace_id


async def test_a_sampled_out_trace_exports_nothing_but_still_propagates_its_ids() -> None:
    exporter = InMemorySpanExporter()
    seen: list[dict[str, Any]] = []
    ids = TraceIds()
    async with running_gateway({"svc": upstream(seen)}, observers=[ids]) as gw:
        attach(gw, config(sample_ratio=0.0), span_exporter=exporter)
        async with Client(client_transport(gw), mode="legacy") as client:
            await client.call_tool("svc__lookup", {"query": "x"})
    assert exporter.get_finished_spans() == ()
    parent = valid_traceparent(seen[-1]["traceparent"])
    assert parent is not None and int(parent.split("-")[3], 16) & 1 == 0  # not sampled
    assert parent.split("-")[1] == ids.trace_ids[-1]


async def test_with_tracing_off_there_are_no_hooks_and_a_client_traceparent_passes_through() -> None:
    seen: list[dict[str, Any]] = []
    ids = TraceIds()
    async with running_gateway({"svc": upstream(seen)}, observers=[ids]) as gw:
        attach(gw, TelemetryConfig())
        assert gw.pipeline.tracer is None and all(c.tracer is None for c in gw.upstreams.values())
        async with Client(client_transport(gw), mode="legacy") as client:
            meta: Any = {"traceparent": CLIENT_TRACEPARENT}
            await client.call_tool("svc__lookup", {"query": "x"}, meta=meta)
    assert seen[-1]["traceparent"] == CLIENT_TRACEPARENT
    assert ids.trace_ids[-1] == ""


async def test_a_request_span_adopts_the_http_traceparent_header_when_meta_has_none() -> None:
    exporter = InMemorySpanExporter()
    tracer = Tracer.from_config(TracingConfig(enabled=True), exporter=exporter)
    info = SessionInfo(session_id="s" * 40, transport="streamable-http", principal=Principal(name="p"))
    exchange = Exchange(session=info, method="tools/list", params={})
    token = INCOMING_TRACEPARENT.set((CLIENT_TRACEPARENT, "vendor=abc"))
    try:
        with tracer.request_span(exchange):
            pass
    finally:
        INCOMING_TRACEPARENT.reset(token)
    await tracer.aclose()
    (span,) = exporter.get_finished_spans()
    assert exchange.trace_id == CLIENT_TRACE
    assert span.parent is not None and format_span_id(span.parent.span_id) == CLIENT_SPAN
    assert (span.attributes or {})["mcp.session"] == "s" * 12  # a prefix only: a session id is a capability


async def test_the_http_middleware_hands_a_valid_traceparent_header_to_the_app_over_real_http() -> None:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"carrier": INCOMING_TRACEPARENT.get()})

    app = TraceContextMiddleware(Starlette(routes=[Route("/", echo)]))
    async with serve_asgi(app) as base, httpx.AsyncClient(base_url=base) as http:
        good = (await http.get("/", headers={"traceparent": CLIENT_TRACEPARENT, "tracestate": "a=b"})).json()
        bad = (
            await http.get("/", headers={"traceparent": "00-" + "0" * 32 + "-" + CLIENT_SPAN + "-01"})
        ).json()
        none = (await http.get("/")).json()
    assert good == {"carrier": [CLIENT_TRACEPARENT, "a=b"]}
    assert bad == {"carrier": None} and none == {"carrier": None}


def test_trace_headers_for_http_upstreams_come_from_the_forwarded_meta() -> None:
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "x", "_meta": {"traceparent": CLIENT_TRACEPARENT, "tracestate": "k=v"}},
    }
    assert trace_headers(message) == {"traceparent": CLIENT_TRACEPARENT, "tracestate": "k=v"}
    assert trace_headers({"jsonrpc": "2.0", "method": "ping"}) == {}
    assert trace_headers({"params": {"_meta": {"traceparent": "garbage"}}}) == {}


@pytest.mark.parametrize(
    "value",
    [
        "ff-" + CLIENT_TRACE + "-" + CLIENT_SPAN + "-01",
        "00-" + CLIENT_TRACE + "-" + "0" * 16 + "-01",
        "00-" + CLIENT_TRACE + "-" + CLIENT_SPAN + "-01-extra",
        "00-xyz",
        12,
    ],
)
def test_malformed_traceparents_are_refused(value: object) -> None:
    assert valid_traceparent(value) is None
