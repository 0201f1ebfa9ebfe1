"""W3C trace context at Bastion's edges: accepted from clients (HTTP header or `_meta`), passed to upstreams.

Rules:
- Only syntactically valid `traceparent` values are accepted (version `00`-`fe`, non-zero ids); anything else is
  ignored, never echoed into logs or spans.
- Over MCP the carrier is `params._meta.traceparent` / `_meta.tracestate` (SEP-414); over HTTP it is the
  `traceparent` / `tracestate` headers. Both carry the same values.
- For HTTP upstreams, the client transport calls `trace_headers(message)` on each outgoing JSON-RPC message and adds
  the result to its HTTP request: the `_meta` of a forwarded request already holds the right (child) context.
"""

from __future__ import annotations

import re
from typing import Any, Final

from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.pipeline.context import INCOMING_TRACEPARENT

_TRACEPARENT: Final = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
MAX_TRACESTATE: Final = 512
"""Longest `tracestate` passed on, in characters (the W3C limit is 32 list members)."""


def valid_traceparent(value: object) -> str | None:
    """`value` if it is a well-formed W3C `traceparent`, else None."""
    if not isinstance(value, str) or len(value) > 256:
        return None
    match = _TRACEPARENT.match(value.strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, _flags, rest = match.groups()
    if version == "ff" or trace_id == "0" * 32 or span_id == "0" * 16 or (version == "00" and rest):
        return None
    return match.group(0)


def valid_tracestate(value: object) -> str | None:
    """`value` if it looks like a `tracestate` list of a sane length, else None."""
    if not isinstance(value, str) or not value or len(value) > MAX_TRACESTATE or "\n" in value:
        return None
    return value


def meta_carrier(params: Any) -> dict[str, str]:
    """The trace context a request's `params._meta` carries (empty when none or invalid)."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        return {}
    parent = valid_traceparent(meta.get("traceparent"))
    if parent is None:
        return {}
    carrier = {"traceparent": parent}
    if (state := valid_tracestate(meta.get("tracestate"))) is not None:
        carrier["tracestate"] = state
    return carrier


def trace_headers(message: dict[str, Any]) -> dict[str, str]:
    """HTTP headers (`traceparent`, `tracestate`) for an outgoing JSON-RPC message to an HTTP upstream.

    For the HTTP client transport: call it on each message before POSTing it and merge the result into the
    request headers. It is pure and cheap (no span, no OpenTelemetry import), so it works with tracing off too,
    when a client's own `traceparent` is passed through.

    Args:
        message: The JSON-RPC message about to be sent.

    Returns:
        The headers to add; empty when the message carries no valid trace context.
    """
    return meta_carrier(message.get("params"))


def header_carrier(scope: Scope) -> tuple[str, str] | None:
    """`(traceparent, tracestate)` from an ASGI HTTP scope's headers, or None without a valid traceparent."""
    parent: str | None = None
    state = ""
    for name, value in scope.get("headers", ()):
        if name == b"traceparent":
            parent = valid_traceparent(value.decode("latin-1"))
        elif name == b"tracestate":
            state = valid_tracestate(value.decode("latin-1")) or ""
    return None if parent is None else (parent, state)


class TraceContextMiddleware:
    """Pure ASGI: remembers a request's `traceparent` header for the MCP session that serves it.

    The session serves each request in a task created while handling the HTTP request, and tasks copy the
    context, so the request span finds the header through `INCOMING_TRACEPARENT`. A `_meta.traceparent` in the
    message wins over the header.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = header_carrier(scope)
        if carrier is None:
            await self.app(scope, receive, send)
            return
        token = INCOMING_TRACEPARENT.set(carrier)
        try:
            await self.app(scope, receive, send)
        finally:
            INCOMING_TRACEPARENT.reset(token)
