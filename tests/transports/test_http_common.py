"""The SSE parser and HTTP helpers shared by the HTTP client transports (pure: no sockets)."""

from __future__ import annotations

import base64
import itertools

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.errors import PayloadTooLarge
from bastion.transports.http_common import (
    SseEvent,
    SseParser,
    encode_header_value,
    http_error_response,
    param_header_map,
    param_headers,
    parse_messages,
    same_origin,
    trace_headers,
)

STREAM = (
    b"\xef\xbb\xbfid: 1\r\ndata:\r\n\r\n"  # BOM, then a priming event (id, empty data), CRLF line ends
    b": keep-alive comment\n"
    b'event: message\nid: 2\ndata: {"a":\ndata:1}\n\n'  # two data lines joined with LF
    b"retry: 250\r"  # CR-only line end
    b"id\rdata: x\r\r"  # a bare `id` field resets the last event id to empty
    b"event: endpoint\ndata: /messages?sessionId=abc\n\n"
    b"data: never dispatched"  # no blank line before the end: discarded
)
EXPECTED = [
    SseEvent("message", b"", "1"),
    SseEvent("message", b'{"a":\n1}', "2"),
    SseEvent("message", b"x", ""),
    SseEvent("endpoint", b"/messages?sessionId=abc", ""),
]


def _feed_all(chunks: list[bytes]) -> tuple[list[SseEvent], SseParser]:
    parser = SseParser()
    events: list[SseEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events, parser


def test_a_whole_stream_yields_every_complete_event_with_its_id():
    events, parser = _feed_all([STREAM])
    assert events == EXPECTED
    assert parser.retry_ms == 250
    assert parser.last_event_id == ""


def test_byte_by_byte_feeding_gives_the_same_events_even_with_crlf_split_across_chunks():
    events, _ = _feed_all([STREAM[i : i + 1] for i in range(len(STREAM))])
    assert events == EXPECTED


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=20))
def test_any_chunking_gives_the_same_events(cuts):
    bounds = [0, *sorted(cuts), len(STREAM)]
    events, _ = _feed_all([STREAM[a:b] for a, b in itertools.pairwise(bounds)])
    assert events == EXPECTED


def test_an_id_containing_nul_is_ignored_and_a_non_numeric_retry_too():
    events, parser = _feed_all([b"id: 7\n\nid: a\0b\nretry: 1s\ndata: y\n\n"])
    assert events == [SseEvent("message", b"y", "7")]
    assert parser.retry_ms is None


def test_an_event_over_the_size_limit_is_refused():
    parser = SseParser(max_event_bytes=100)
    with pytest.raises(PayloadTooLarge):
        parser.feed(b"data: " + b"x" * 60 + b"\ndata: " + b"y" * 60 + b"\n")
    with pytest.raises(PayloadTooLarge):
        SseParser(max_event_bytes=100).feed(b"data: " + b"z" * 200)


def test_parse_messages_accepts_a_message_or_a_batch_and_drops_garbage():
    assert parse_messages(b'{"jsonrpc":"2.0","id":1,"result":{}}', "t") == [
        {"jsonrpc": "2.0", "id": 1, "result": {}}
    ]
    batch = b'[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","id":2,"result":{}}]'
    assert len(parse_messages(batch, "t")) == 2
    assert parse_messages(b"not json", "t") == []
    assert parse_messages(b'{"jsonrpc":"1.0","id":1}', "t") == []


def test_an_http_error_keeps_the_upstreams_jsonrpc_error_readdressed_to_our_id():
    body = b'{"jsonrpc":"2.0","id":null,"error":{"code":-32000,"message":"Bad Request: no session"}}'
    assert http_error_response(7, 400, body, "calc") == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {"code": -32000, "message": "Bad Request: no session"},
    }


def test_an_http_error_without_a_jsonrpc_body_names_the_status_not_the_body():
    reply = http_error_response("r1", 502, b"<html>secret upstream page</html>", "calc")
    assert reply["id"] == "r1"
    assert reply["error"]["code"] == -31010
    assert reply["error"]["data"] == {"reason": "upstream_error", "server": "calc", "httpStatus": 502}
    assert "secret" not in reply["error"]["message"]
    assert http_error_response(1, 202, b"", "calc")["error"]["data"]["httpStatus"] == 202


def test_header_values_are_verbatim_when_safe_and_base64_wrapped_otherwise():
    assert encode_header_value("get_weather") == "get_weather"
    assert encode_header_value("file:///tmp/a b.txt") == "file:///tmp/a b.txt"
    for raw in ("héllo", " padded", "line\nbreak", "=?base64?abc?="):
        encoded = encode_header_value(raw)
        assert encoded.startswith("=?base64?") and encoded.endswith("?=")
        assert base64.b64decode(encoded[9:-2]).decode() == raw


def test_trace_context_is_copied_from_meta_and_malformed_values_are_not():
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    headers: dict[str, str] = {}
    trace_headers({"params": {"_meta": {"traceparent": parent, "tracestate": "k=v"}}}, headers)
    assert headers == {"traceparent": parent, "tracestate": "k=v"}
    headers = {}
    trace_headers({"params": {"_meta": {"traceparent": "x\r\nInjected: 1"}}}, headers)
    trace_headers({"params": {"_meta": "nope"}}, headers)
    trace_headers({"method": "ping"}, headers)
    assert headers == {}


def test_origins_compare_scheme_host_and_default_resolved_port():
    base = httpx.URL("http://127.0.0.1:8000/sse")
    assert same_origin(base.join("/messages?sessionId=1"), base)
    assert not same_origin(base.join("http://evil.example/messages"), base)
    assert not same_origin(httpx.URL("https://127.0.0.1:8000/m"), base)
    assert same_origin(httpx.URL("https://a.example/x"), httpx.URL("https://a.example:443/y"))


def test_x_mcp_header_annotations_are_found_only_through_properties_chains():
    schema = {
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "opts": {"properties": {"dry": {"type": "boolean", "x-mcp-header": "Dry-Run"}}},
            "items": {"type": "array", "items": {"x-mcp-header": "Nope"}},
            "bad": {"type": "string", "x-mcp-header": "not a token"},
        },
        "x-mcp-header": "Root",
    }
    assert param_header_map(schema) == {("region",): "Region", ("opts", "dry"): "Dry-Run"}
    assert param_header_map(None) == {}


def test_annotated_arguments_become_mcp_param_headers_rendered_and_encoded():
    mapping = {("region",): "Region", ("opts", "dry"): "Dry-Run", ("count",): "Count", ("missing",): "Gone"}
    headers: dict[str, str] = {}
    param_headers(mapping, {"region": "zürich", "opts": {"dry": True}, "count": 3}, headers)
    assert headers == {
        "mcp-param-Region": encode_header_value("zürich"),
        "mcp-param-Dry-Run": "true",
        "mcp-param-Count": "3",
    }
    headers = {}
    param_headers(mapping, {"region": {"nested": 1}, "opts": "x"}, headers)
    param_headers(mapping, None, headers)
    assert headers == {}
