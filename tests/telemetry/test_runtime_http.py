"""The whole runtime over real HTTP: `/metrics` on the full app, spans exported over OTLP/HTTP to a real local
receiver, continuing a client's `traceparent` header, with the same trace id in the audit trail."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.app.http import build_http_app
from bastion.app.runtime import build_runtime
from bastion.auth.apikeys import ApiKeyStore
from bastion.config import parse_config
from bastion.telemetry.install import Telemetry
from bastion.telemetry.logs import JsonFormatter
from tests.peers import calc_stdio
from tests.telemetry.conftest import serve_asgi

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every `bastion.*` log line of the test (DEBUG and up), as JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("bastion")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
SECRET_ARGUMENT = "sk-live-arg-13579bdf"


async def test_the_full_app_serves_metrics_and_exports_spans_continuing_the_http_traceparent(
    tmp_path: Path, json_logs: io.StringIO
) -> None:
    received: list[ExportTraceServiceRequest] = []

    async def traces(request: Request) -> Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.body())
        received.append(message)
        return Response(b"", media_type="application/x-protobuf")

    collector = Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
    audit_file = tmp_path / "audit.jsonl"
    async with serve_asgi(collector) as collector_url:
        config = parse_config(
            {
                "servers": {"calc": calc_stdio()},
                "state": {"path": str(tmp_path / "state.db")},
                "auth": {"enabled": True},
                "guardrails": {"enabled": False},  # not under test here (and its pattern compile is slow)
                "audit": {"sinks": [{"type": "jsonl", "path": str(audit_file), "fsync": False}]},
                "telemetry": {"tracing": {"enabled": True, "endpoint": f"{collector_url}/v1/traces"}},
            }
        )
        runtime = build_runtime(config)
        telemetry: Any = runtime.telemetry
        assert isinstance(telemetry, Telemetry)
        api_key, _ = await ApiKeyStore(runtime.store).create("alice", ["admin"])
        app = build_http_app(runtime, host="127.0.0.1", port=0)
        async with serve_asgi(app, lifespan="on") as url:
            headers = {
                "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
                "authorization": f"Bearer {api_key}",
            }
            async with httpx2.AsyncClient(headers=headers, timeout=60) as http2:
                async with Client(
                    streamable_http_client(f"{url}/mcp", http_client=http2), mode="legacy"
                ) as client:
                    result = await client.call_tool("calc__echo", {"text": SECRET_ARGUMENT})
                    assert result.structured_content == {"result": SECRET_ARGUMENT}
            async with httpx.AsyncClient() as http:
                scrape = await http.get(f"{url}/metrics", headers={"x-api-key": api_key})
        # The server has stopped: its lifespan closed the gateway, which flushed the span exporter.
    assert scrape.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
    calls = [s for s in families["bastion_calls"].samples if s.name == "bastion_calls_total"]
    assert any(
        s.labels == {"server": "calc", "tool": "echo", "method": "tools/call", "outcome": "allow"}
        for s in calls
    )
    assert "bastion_audit_queue_depth" in families
    assert SECRET_ARGUMENT not in scrape.text and api_key not in scrape.text

    spans = [span for r in received for rs in r.resource_spans for ss in rs.scope_spans for span in ss.spans]
    (request,) = [s for s in spans if s.name == "tools/call calc__echo"]
    assert request.trace_id.hex() == CLIENT_TRACE and request.parent_span_id.hex() == CLIENT_SPAN
    children = {s.name for s in spans if s.parent_span_id == request.span_id}
    assert "tools/call calc" in children and "stage authenticate request" in children
    assert all(SECRET_ARGUMENT not in str(s) and api_key not in str(s) for s in spans)
    services = {a.value.string_value for r in received for a in r.resource_spans[0].resource.attributes}
    assert "bastion" in services

    logged = json_logs.getvalue()
    assert logged and all(json.loads(line) for line in logged.splitlines())
    assert api_key not in logged and SECRET_ARGUMENT not in logged
    events = [json.loads(line) for line in audit_file.read_text().splitlines()]
    echoes = [e["event"] for e in events if e["event"]["method"] == "tools/call"]
    assert echoes and echoes[-1]["trace_id"] == CLIENT_TRACE  # audit and traces carry the same id
