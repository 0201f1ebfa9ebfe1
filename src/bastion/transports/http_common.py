"""What Bastion's HTTP client transports share: an incremental SSE parser, the pooled httpx client, the inbox.

Rules:
- SSE is parsed per the WHATWG event-stream rules (CR, LF or CRLF line ends; `data` lines joined with LF; a
  leading space after the colon dropped; `id` with NUL ignored; `retry` digits only); event data stays bytes so a
  message is decoded once, by orjson.
- Every byte read from an upstream is bounded: one SSE event, one JSON body, one error body.
- Configured headers carry upstream credentials: they go on the client as defaults and are never logged; log
  lines name the server, never the URL (it may carry a token in its query).
- Redirects are not followed: a redirect could carry those credentials to another origin.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import logging
import re
import sys
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from bastion import __version__
from bastion.errors import BastionError, PayloadTooLarge, UpstreamError, error_response
from bastion.protocol import jsonrpc
from bastion.transports.base import Incoming
from bastion.transports.h1 import H1Client, H1Response
from bastion.types import JsonDict, RequestId

logger = logging.getLogger("bastion.transports.http")
if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    # httpcore tries `import sniffio` up to three times per request and falls back to asyncio when it is missing
    # (anyio no longer installs it). A failed import searches all of sys.path every time: hundreds of
    # microseconds per call. Recording the absence once makes each attempt fail at once, with the same outcome.
    sys.modules["sniffio"] = None  # type: ignore[assignment]
if logging.getLogger("httpx").level == logging.NOTSET:
    # httpx logs every request line, URL included, at INFO: an upstream URL may carry a token in its query, and
    # a log line per call is a cost on the hot path. An operator who sets the httpx level explicitly still wins.
    logging.getLogger("httpx").setLevel(logging.WARNING)

MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024
"""Bytes; the largest JSON body or SSE event accepted from an upstream (as for stdio lines)."""
MAX_ERROR_BODY_BYTES: Final = 64 * 1024
MAX_INBOX_MESSAGES: Final = 10_000
"""Messages queued from one upstream before its notifications are dropped (responses and requests still pass:
they are bounded by our own calls in flight), so a server flooding notifications cannot grow our memory."""
"""Bytes of an HTTP error body read to look for a JSON-RPC error in it."""
MAX_CONNECTIONS: Final = 128
"""Connections per upstream; each in-flight SSE response holds one (HTTP/1.1)."""
MAX_KEEPALIVE_CONNECTIONS: Final = 32
"""Idle connections kept open per upstream for reuse."""
KEEPALIVE_EXPIRY_SECONDS: Final = 4.0
"""Seconds an idle pooled connection is kept: under the common 5 s server keep-alive (uvicorn, Node), so we
drop a connection before the server does and never send a request into a socket it is closing."""
CONNECT_TIMEOUT_SECONDS: Final = 10.0
"""Upper bound on opening a TCP/TLS connection (the configured timeout is used when it is smaller)."""
USER_AGENT: Final = f"bastion/{__version__}"
_TRACE_VALUE = re.compile(r"^[\x21-\x7e]{1,512}$")
_HEADER_SAFE = re.compile(r"^[\x20-\x7e]*$")
_B64_SENTINEL = re.compile(r"^=\?base64\?.*\?=$")
_BOM: Final = b"\xef\xbb\xbf"
_HEADER_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_MAX_PARAM_DEPTH: Final = 16


HttpClient = H1Client | httpx.AsyncClient
"""The pooled client of an HTTP upstream: `H1Client`, or httpx's when the environment names a proxy."""
HttpResponse = H1Response | httpx.Response


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched server-sent event."""

    event: str
    """The event type (`message` when the stream named none)."""
    data: bytes
    """The data lines joined with LF (raw bytes: parsed once, as JSON, by the consumer)."""
    id: str | None
    """The last event id in force when the event was dispatched."""


class SseParser:
    """Incremental `text/event-stream` parser: feed it chunks as they arrive, get complete events back."""

    __slots__ = (
        "_data",
        "_event",
        "_limit",
        "_pending",
        "_size",
        "_skip_lf",
        "_started",
        "last_event_id",
        "retry_ms",
    )

    def __init__(
        self,
        *,
        max_event_bytes: int = MAX_MESSAGE_BYTES,
        last_event_id: str | None = None,
        retry_ms: int | None = None,
    ) -> None:
        self._limit = max_event_bytes
        self._pending = bytearray()
        self._data: list[bytes] | None = None
        self._size = 0
        self._event = ""
        self._skip_lf = False
        self._started = False
        self.last_event_id = last_event_id
        """The id to resume from with `Last-Event-ID` (survives across events, per the SSE rules)."""
        self.retry_ms = retry_ms
        """The reconnection delay the server asked for, in milliseconds."""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Consume a chunk; returns the events it completed. Raises `PayloadTooLarge` past the event limit."""
        if not self._started:
            chunk = bytes(self._pending) + chunk
            self._pending.clear()
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._pending += chunk  # maybe a BOM split across chunks: wait for more
                return []
            self._started = True
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\n" not in chunk and b"\r" not in chunk:
            self._pending += chunk
            self._check_size(len(self._pending))
            return []
        if self._pending:
            self._pending += chunk
            text = bytes(self._pending)
            self._pending.clear()
        else:
            text = chunk
        events: list[SseEvent] = []
        for line in text.splitlines(keepends=True):
            if line.endswith(b"\n"):
                body = line[:-2] if line.endswith(b"\r\n") else line[:-1]
            elif line.endswith(b"\r"):
                body = line[:-1]
            else:  # the unterminated tail: wait for the rest of the line
                self._pending += line
                self._check_size(len(line))
                break
            event = self._line(body)
            if event is not None:
                events.append(event)
        else:
            # A chunk ending in CR may be the first half of CRLF: the LF that follows is not a second line end.
            self._skip_lf = text.endswith(b"\r")
        return events

    def _check_size(self, extra: int) -> None:
        if self._size + extra > self._limit:
            raise PayloadTooLarge("server-sent event over the size limit", data={"limit": self._limit})

    def _line(self, line: bytes) -> SseEvent | None:
        if not line:
            data, self._data, self._size = self._data, None, 0
            event, self._event = self._event, ""
            if data is None:
                return None
            return SseEvent(event or "message", b"\n".join(data), self.last_event_id)
        if line[:1] == b":":
            return None  # a comment: keep-alive
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._check_size(len(value) + 1)
            self._size += len(value) + 1
            if self._data is None:
                self._data = [value]
            else:
                self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self.retry_ms = int(value)
        return None


class Inbox:
    """The queue behind a transport's `receive()`: messages in arrival order, then the end of the connection."""

    __slots__ = ("_queue", "dropped", "ended")

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Incoming | None] = asyncio.Queue()
        self.ended = False
        """True once `end()` ran: nothing more will be delivered."""
        self.dropped = 0
        """Notifications dropped because the reader fell `MAX_INBOX_MESSAGES` behind."""

    def put(self, message: JsonDict, related: RequestId | None = None) -> None:
        """Deliver one message (dropped once the inbox has ended: nobody will read it)."""
        if self.ended:
            return
        if "id" not in message and self._queue.qsize() >= MAX_INBOX_MESSAGES:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.warning(
                    "an upstream floods notifications faster than they are relayed: %d dropped", self.dropped
                )
            return
        self._queue.put_nowait(Incoming(message, related))

    def fail(self, request_id: RequestId, exc: BastionError) -> None:
        """Answer our own request `request_id` with a JSON-RPC error (the HTTP exchange for it failed)."""
        self.put(error_response(request_id, exc), request_id)

    def end(self) -> None:
        """Finish `receive()` after everything already delivered."""
        if not self.ended:
            self.ended = True
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[Incoming]:
        while (item := await self._queue.get()) is not None:
            yield item


class HttpClientBase:
    """What both HTTP client transports hold: the URL, the configured headers, one pooled client, the inbox."""

    def __init__(
        self,
        url: str,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = 60.0,
        name: str = "http",
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        client: HttpClient | None = None,
    ) -> None:
        """Prepare a transport; no I/O happens here.

        Args:
            url: The MCP endpoint (Streamable HTTP) or the SSE endpoint (HTTP+SSE).
            headers: Extra headers for every request (credentials: never logged).
            timeout: Seconds for connecting, writing, waiting for a pooled connection and for a bare 202; a
                request's answer is bounded by the upstream connection's per-request timer instead.
            name: The server's name, for log lines and errors.
            max_message_bytes: The largest JSON body or SSE event accepted.
            client: A pooled HTTP client shared with the server's other upstream sessions (its owner closes it);
                without one the transport builds and closes its own.
        """
        self._url = httpx.URL(url)
        self._headers = dict(headers or {})
        self._timeout = timeout
        self._name = name
        self._limit = max_message_bytes
        self._client: HttpClient | None = None
        self._pooled = client
        self._inbox = Inbox()
        self._closed = False
        self._init_state()

    def _init_state(self) -> None:
        """Set up the subclass's own connection state (called at the end of `__init__`)."""

    def receive(self) -> AsyncIterator[Incoming]:
        return self._inbox.__aiter__()

    def _open_client(self) -> HttpClient:
        """The pooled client when one was given, else a client of this transport's own."""
        return self._pooled or build_client(self._headers, self._timeout)

    async def _close_client(self, client: HttpClient) -> None:
        if client is not self._pooled:
            await client.aclose()


def build_client(headers: Mapping[str, str], timeout: float) -> HttpClient:
    """The one pooled HTTP/1.1 keep-alive client of a transport, with the configured headers as defaults.

    `H1Client` (see `h1.py` for why); httpx's client only when the environment names a proxy (`HTTPS_PROXY`,
    `ALL_PROXY`, ...), since only httpx speaks to proxies. Reads are unbounded here on purpose: SSE streams stay
    open as long as a tool runs (per-tool timeouts can be longer than the server's default), and the upstream
    connection's own timer bounds every request.
    """
    connect = min(timeout, CONNECT_TIMEOUT_SECONDS)
    if not _environment_proxies():
        return H1Client(
            {"user-agent": USER_AGENT, **headers},
            timeout=timeout,
            connect_timeout=connect,
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
        )
    return httpx.AsyncClient(
        headers={"user-agent": USER_AGENT, **headers},
        timeout=httpx.Timeout(connect=connect, read=None, write=timeout, pool=timeout),
        limits=httpx.Limits(
            max_connections=MAX_CONNECTIONS,
            max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
            keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
        ),
        follow_redirects=False,
    )


def _environment_proxies() -> bool:
    """True when proxy variables are set for http, https or all schemes (the ones httpx would honour)."""
    proxies = urllib.request.getproxies_environment()
    return any(proxies.get(scheme) for scheme in ("http", "https", "all"))


async def read_bounded(response: HttpResponse, limit: int) -> bytes:
    """The response body, refusing (`PayloadTooLarge`) one longer than `limit` bytes."""
    length = response.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge("upstream response over the size limit", data={"limit": limit})
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("upstream response over the size limit", data={"limit": limit})
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def parse_messages(payload: bytes, source: str) -> list[JsonDict]:
    """The JSON-RPC messages in a body or an event (an array is a 2025-03-26 batch); garbage is logged, dropped."""
    try:
        value = jsonrpc.loads(payload)
        items = value if isinstance(value, list) else [value]
        for item in items:
            jsonrpc.classify(item)
    except BastionError as exc:
        logger.warning("%s: ignored a payload that is not JSON-RPC (%s)", source, exc.reason)
        return []
    return items


def http_error_response(request_id: RequestId, status: int, body: bytes, server: str) -> JsonDict:
    """The answer to our request when its POST got HTTP `status`.

    The upstream's own JSON-RPC error from the body wins (re-addressed to our id: servers often send `id: null`
    when they refuse before parsing); otherwise an `UpstreamError` naming the status.
    """
    try:
        value: Any = jsonrpc.loads(body) if body else None
    except BastionError:
        value = None
    error = value.get("error") if isinstance(value, dict) else None
    if (
        isinstance(error, dict)
        and isinstance(error.get("code"), int)
        and isinstance(error.get("message"), str)
    ):
        return {"jsonrpc": "2.0", "id": request_id, "error": error}
    what = "accepted the request without answering it" if status == 202 else f"answered HTTP {status}"
    exc = UpstreamError(f"server {server} {what}", data={"server": server, "httpStatus": status})
    return error_response(request_id, exc)


def trace_headers(message: JsonDict, headers: dict[str, str]) -> None:
    """Copy W3C trace context from `params._meta` into HTTP headers (telemetry joins spans across the hop)."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        return
    for key in ("traceparent", "tracestate"):
        value = meta.get(key)
        if isinstance(value, str) and _TRACE_VALUE.match(value):
            headers[key] = value


def encode_header_value(value: str) -> str:
    """A value for `Mcp-Name`/`Mcp-Param-*`: verbatim when it survives an HTTP field, else `=?base64?…?=`."""
    if _HEADER_SAFE.match(value) and value == value.strip() and not _B64_SENTINEL.match(value):
        return value
    return f"=?base64?{base64.b64encode(value.encode('utf-8')).decode('ascii')}?="


def same_origin(a: httpx.URL, b: httpx.URL) -> bool:
    """True when both URLs have the same scheme, host and (default-resolved) port."""
    defaults = {"http": 80, "https": 443}
    return (
        a.scheme == b.scheme
        and a.host == b.host
        and (a.port or defaults.get(a.scheme)) == (b.port or defaults.get(b.scheme))
    )


def param_header_map(input_schema: Any) -> dict[tuple[str, ...], str]:
    """The `x-mcp-header` annotations of a tool's inputSchema: property path -> header token (2026-07-28).

    Only properties reachable through `properties` chains count, as the spec requires; tokens that are not
    valid header names are skipped (a server would refuse the tool's calls anyway).
    """
    found: dict[tuple[str, ...], str] = {}
    stack: list[tuple[tuple[str, ...], Any]] = [((), input_schema)]
    while stack:
        path, schema = stack.pop()
        if not isinstance(schema, dict):
            continue
        token = schema.get("x-mcp-header")
        if path and isinstance(token, str) and _HEADER_TOKEN.match(token):
            found[path] = token
        properties = schema.get("properties")
        if isinstance(properties, dict) and len(path) < _MAX_PARAM_DEPTH:
            stack.extend(((*path, str(name)), sub) for name, sub in properties.items())
    return found


def param_headers(header_map: Mapping[tuple[str, ...], str], arguments: Any, headers: dict[str, str]) -> None:
    """Mirror annotated `tools/call` arguments into `Mcp-Param-<token>` headers (absent values are omitted)."""
    for path, token in header_map.items():
        value = arguments
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, bool):
            headers[f"mcp-param-{token}"] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            with contextlib.suppress(ValueError):  # an int past the int-to-str digit limit has no rendering
                headers[f"mcp-param-{token}"] = encode_header_value(str(value))
