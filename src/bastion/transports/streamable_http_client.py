"""Streamable HTTP, client side: Bastion talks to an upstream MCP server at one URL, in either protocol era.

Rules:
- Every message is one POST of the bytes orjson made once. A request's POST is its own task, so `send()` returns
  at once; everything its response carries (JSON or SSE) comes out of `receive()` with `related` = its id, so
  server->client requests and progress reach the client whose call caused them.
- A request never hangs on HTTP: a failed exchange becomes a JSON-RPC error response for its id.
- Handshake era: the `Mcp-Session-Id` of the initialize response is echoed on every request, with
  `MCP-Protocol-Version` once negotiated. After `notifications/initialized` a GET opens the standalone stream
  (405: the server has none). A stream that ends before its response is resumed with GET + `Last-Event-ID` after
  the server's `retry:` delay (SSE polling). The session ends with DELETE on `aclose()`.
- Session gone (404 on a request; 400/404 on our GET, which is how some servers say it) or server unreachable
  (connection refused): the transport ends, so supervision reconnects and re-initializes.
- 2026-07-28 era: no session, no GET stream; `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` on every POST,
  and `Mcp-Param-*` for tool arguments annotated `x-mcp-header` (learned from tools/list results); closing a request's response stream is its cancellation, so `notifications/cancelled` is not POSTed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from typing import Final

import httpx
import orjson

from bastion.errors import BastionError, UpstreamError, UpstreamUnavailable
from bastion.protocol import versions
from bastion.protocol.jsonrpc import as_dict
from bastion.transports.base import TransportClosed
from bastion.transports.http_common import (
    MAX_ERROR_BODY_BYTES,
    HttpClientBase,
    HttpResponse,
    SseParser,
    encode_header_value,
    http_error_response,
    param_header_map,
    param_headers,
    parse_messages,
    read_bounded,
    trace_headers,
)
from bastion.types import JsonDict, RequestId

logger = logging.getLogger("bastion.transports.streamable_http")

DEFAULT_RETRY_SECONDS: Final = 1.0
"""Seconds to wait before resuming a stream when the server sent no `retry:`."""
MAX_RETRY_SECONDS: Final = 30.0
"""Upper bound on a server's `retry:` (a hostile value cannot park a request for hours)."""
MAX_RESUME_FAILURES: Final = 3
"""Failed reconnects in a row before a stream (and its request) is given up."""
DRAIN_SECONDS: Final = 0.5
"""How long the end of a response stream is awaited after the answer before the connection is dropped instead."""
CLOSE_TIMEOUT_SECONDS: Final = 5.0
"""Upper bound on the DELETE that ends a session, so shutdown never waits on a dead upstream."""
NAME_PARAMS: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
"""Methods whose `Mcp-Name` header mirrors a params member (2026-07-28)."""
_SESSION_ID = re.compile(r"^[\x21-\x7e]{1,1024}$")
_ACCEPT_BOTH: Final = "application/json, text/event-stream"


class _SessionGone(Exception):
    """The upstream forgot our session (or is gone): end the transport."""


class StreamableHttpClientTransport(HttpClientBase):
    """A connection from Bastion to one upstream over Streamable HTTP (no I/O until the first message)."""

    def _init_state(self) -> None:
        self._session_id: str | None = None
        self._version: str | None = None
        self._modern = False
        self._requests: dict[RequestId, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._get_stream: asyncio.Task[None] | None = None
        self._ended = "is not connected"
        self._param_maps: dict[str, dict[tuple[str, ...], str]] = {}
        """`x-mcp-header` annotations per upstream tool name, learned from tools/list results (2026-07-28)."""
        self._tool_lists: set[RequestId] = set()

    @property
    def session_id(self) -> str | None:
        """The upstream's `Mcp-Session-Id` (handshake era), if it set one."""
        return self._session_id

    async def start(self) -> None:
        self._client = self._open_client()

    def set_protocol_version(self, version: str) -> None:
        self._version = version
        self._modern = versions.is_modern(version)

    # -- sending -----------------------------------------------------------------------------------------------

    async def send(self, message: JsonDict) -> None:
        if self._client is None or self._closed or self._inbox.ended:
            raise TransportClosed(f"server {self._name} {self._ended}", data={"server": self._name})
        method = message.get("method")
        if method is not None and "id" in message:
            request_id: RequestId = message["id"]
            if method == "tools/list" and self._modern:
                self._tool_lists.add(request_id)
            task = asyncio.create_task(self._exchange(request_id, method, message))
            self._track(task)
            self._requests[request_id] = task
            task.add_done_callback(lambda t: self._forget(request_id, t))
            return
        if method == "notifications/cancelled":
            cancelled = as_dict(message.get("params")).get("requestId")
            target = self._requests.get(cancelled) if isinstance(cancelled, str | int) else None
            if self._modern:  # closing the response stream is the cancellation; there is nothing to POST
                if target is not None:
                    target.cancel()
                return
            await self._post_message(message, method)
            if target is not None:
                target.cancel()  # the request is abandoned: stop reading an answer nobody waits for
            return
        await self._post_message(message, method)
        if method == "notifications/initialized" and not self._modern and self._get_stream is None:
            self._get_stream = asyncio.create_task(self._standalone_stream())
            self._track(self._get_stream)

    def _forget(self, request_id: RequestId, task: asyncio.Task[None]) -> None:
        if self._requests.get(request_id) is task:
            del self._requests[request_id]
            self._tool_lists.discard(request_id)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _headers_for(self, message: JsonDict, method: str | None) -> dict[str, str]:
        headers = {"accept": _ACCEPT_BOTH, "content-type": "application/json"}
        params = as_dict(message.get("params"))
        version = self._version
        if version is None and params:
            # The era probe (`server/discover`) carries the 2026-07-28 envelope before anything is negotiated.
            envelope = versions.envelope_version(params)
            version = envelope if versions.is_modern(envelope) else None
        modern = versions.is_modern(version)
        if self._session_id is not None and not modern:
            headers["mcp-session-id"] = self._session_id
        if version is not None and method != "initialize":
            headers["mcp-protocol-version"] = version
        if modern and method is not None:
            headers["mcp-method"] = method
            key = NAME_PARAMS.get(method)
            value = params.get(key) if key is not None else None
            if isinstance(value, str):
                headers["mcp-name"] = encode_header_value(value)
                if method == "tools/call" and (param_map := self._param_maps.get(value)):
                    param_headers(param_map, params.get("arguments"), headers)
        trace_headers(message, headers)
        return headers

    def _session_headers(self, accept: str) -> dict[str, str]:
        headers = {"accept": accept}
        if self._session_id is not None:
            headers["mcp-session-id"] = self._session_id
        if self._version is not None:
            headers["mcp-protocol-version"] = self._version
        return headers

    async def _post_message(self, message: JsonDict, method: str | None) -> None:
        """POST a notification or a response to a server->client request (the server answers 202)."""
        assert self._client is not None
        headers = self._headers_for(message, method)
        try:
            # Streamed and left unread: the answer is a bare 202, and a hostile body must not fill memory.
            async with self._client.stream(
                "POST", self._url, content=orjson.dumps(message), headers=headers, timeout=self._timeout
            ) as response:
                status = response.status_code
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.ConnectError):
                self._end("unreachable")
                raise TransportClosed(
                    f"server {self._name} is unreachable", data={"server": self._name}
                ) from exc
            logger.warning(
                "upstream %s: sending %s failed (%s)", self._name, method or "a response", type(exc).__name__
            )
            return
        if status == 404 and self._session_id is not None and not self._modern:
            self._end("session gone")
            raise TransportClosed(f"server {self._name} ended the session", data={"server": self._name})
        if status >= 300:
            logger.warning("upstream %s: %s answered HTTP %d", self._name, method or "response", status)

    # -- a request's exchange ----------------------------------------------------------------------------------

    async def _exchange(self, request_id: RequestId, method: str, message: JsonDict) -> None:
        assert self._client is not None
        headers = self._headers_for(message, method)
        try:
            async with self._client.stream(
                "POST", self._url, content=orjson.dumps(message), headers=headers
            ) as response:
                await self._on_response(request_id, method, response)
        except httpx.TransportError as exc:
            self._inbox.fail(request_id, self._unavailable(exc))
            await self._check_alive(exc)
        except _SessionGone:
            self._inbox.fail(
                request_id,
                UpstreamUnavailable(f"server {self._name} ended the session", data={"server": self._name}),
            )
            self._end("session gone")
        except BastionError as exc:
            self._inbox.fail(request_id, exc)

    def _unavailable(self, exc: httpx.TransportError) -> UpstreamUnavailable:
        what = "is unreachable" if isinstance(exc, httpx.ConnectError) else f"failed ({type(exc).__name__})"
        return UpstreamUnavailable(f"server {self._name} {what}", data={"server": self._name})

    async def _on_response(self, request_id: RequestId, method: str, response: HttpResponse) -> None:
        status = response.status_code
        if method == "initialize" and status == 200:
            session_id = response.headers.get("mcp-session-id")
            if session_id is not None:
                if _SESSION_ID.match(session_id):
                    self._session_id = session_id
                else:
                    logger.warning("upstream %s sent an invalid session id; ignoring it", self._name)
        if status != 200:
            body = b""
            with contextlib.suppress(httpx.TransportError, BastionError):
                body = await read_bounded(response, MAX_ERROR_BODY_BYTES)
            if status == 404 and self._session_id is not None and not self._modern:
                raise _SessionGone
            self._inbox.put(http_error_response(request_id, status, body, self._name), request_id)
            if status == 400 and self._session_id is not None and not self._modern:
                # Some servers (the TypeScript SDK's) answer a forgotten session with 400: ask the GET stream.
                await self._check_session()
            return
        content_type = response.headers.get("content-type", "").lower()
        if content_type.startswith("text/event-stream"):
            await self._read_request_stream(request_id, response)
        elif content_type.startswith("application/json"):
            body = await read_bounded(response, self._limit)
            if not self._deliver(body, request_id):
                raise UpstreamError(
                    f"server {self._name} sent an invalid response", data={"server": self._name}
                )
        else:
            raise UpstreamError(
                f"server {self._name} answered with an unexpected content type", data={"server": self._name}
            )

    def _deliver(self, payload: bytes, related: RequestId | None) -> bool:
        """Hand the messages in `payload` to `receive()`; True when one of them answers `related`."""
        answered = False
        for message in parse_messages(payload, self._name):
            self._inbox.put(message, related)
            if related is not None and "method" not in message and message.get("id") == related:
                answered = True
                if related in self._tool_lists:
                    self._learn_tools(message)
        return answered

    def _learn_tools(self, message: JsonDict) -> None:
        for tool in as_dict(message.get("result")).get("tools") or ():
            if isinstance(tool, dict) and isinstance(name := tool.get("name"), str):
                self._param_maps[name] = param_header_map(tool.get("inputSchema"))

    async def _pump(self, response: HttpResponse, parser: SseParser, related: RequestId | None) -> bool:
        """Deliver a stream's events; True once the response to `related` arrived (then stop reading)."""
        chunks = response.aiter_bytes()
        async for chunk in chunks:
            for event in parser.feed(chunk):
                if event.event == "message" and event.data and self._deliver(event.data, related):
                    await _drain(chunks)
                    return True
        return False

    async def _read_request_stream(self, request_id: RequestId, response: HttpResponse) -> None:
        parser = SseParser(max_event_bytes=self._limit)
        try:
            if await self._pump(response, parser, request_id):
                return
            failures = 0
        except httpx.TransportError:
            failures = 1
        # The stream ended before the response: the server is polling us, or the connection broke.
        while not self._inbox.ended:
            if self._modern or not parser.last_event_id or failures >= MAX_RESUME_FAILURES:
                # 2026-07-28 has no resumption; without an event id there is nothing to resume from.
                self._inbox.fail(
                    request_id,
                    UpstreamUnavailable(
                        f"server {self._name} closed the stream before answering", data={"server": self._name}
                    ),
                )
                if failures:
                    await self._check_alive(None)
                return
            if failures != 1:  # a first break is retried at once: the attempt doubles as a liveness check
                await asyncio.sleep(_backoff(parser.retry_ms, failures))
            outcome = await self._resume(parser, request_id)
            if outcome is True:
                return
            failures = 0 if outcome is False else failures + 1

    async def _resume(self, parser: SseParser, related: RequestId) -> bool | None:
        """GET + `Last-Event-ID`: True when the response arrived, False on a clean end, None on a failure."""
        assert self._client is not None
        headers = self._session_headers("text/event-stream")
        headers["last-event-id"] = parser.last_event_id or ""
        try:
            async with self._client.stream("GET", self._url, headers=headers) as response:
                if response.status_code in (400, 404) and self._session_id is not None:
                    raise _SessionGone
                if response.status_code != 200:
                    return None
                fresh = SseParser(
                    max_event_bytes=self._limit, last_event_id=parser.last_event_id, retry_ms=parser.retry_ms
                )
                try:
                    return await self._pump(response, fresh, related)
                finally:
                    parser.last_event_id, parser.retry_ms = fresh.last_event_id, fresh.retry_ms
        except httpx.ConnectError:
            self._end("unreachable")
            return None
        except httpx.TransportError:
            return None

    # -- the standalone GET stream -----------------------------------------------------------------------------

    async def _standalone_stream(self) -> None:
        """Server-initiated traffic outside any request; reconnects with `Last-Event-ID` until the session ends."""
        assert self._client is not None
        parser = SseParser(max_event_bytes=self._limit)
        failures = 0
        while not self._closed and not self._inbox.ended:
            headers = self._session_headers("text/event-stream")
            if parser.last_event_id:
                headers["last-event-id"] = parser.last_event_id
            try:
                async with self._client.stream("GET", self._url, headers=headers) as response:
                    status = response.status_code
                    if status == 405:
                        return  # the server offers no standalone stream
                    if status in (400, 404):
                        self._end("session gone")
                        return
                    if status == 200:
                        failures = 0
                        parser = SseParser(
                            max_event_bytes=self._limit,
                            last_event_id=parser.last_event_id,
                            retry_ms=parser.retry_ms,
                        )
                        await self._pump(response, parser, None)
                    else:
                        failures = max(
                            failures + 1, 2
                        )  # e.g. 409: the server still holds our previous stream
            except httpx.ConnectError:
                self._end("unreachable")
                return
            except (httpx.TransportError, BastionError) as exc:
                failures += 1
                logger.debug("upstream %s GET stream broke (%s)", self._name, type(exc).__name__)
            # A clean end waits `retry:`; a first break is retried at once (the attempt doubles as a liveness
            # check); repeated failures back off, and the stream is never given up while the session lives.
            if failures != 1:
                await asyncio.sleep(_backoff(parser.retry_ms, failures))

    async def _check_session(self) -> None:
        """After an ambiguous 400: a GET with our session tells whether the server still knows it."""
        assert self._client is not None
        with contextlib.suppress(httpx.TransportError):
            async with self._client.stream(
                "GET", self._url, headers=self._session_headers("text/event-stream"), timeout=self._timeout
            ) as r:
                if r.status_code in (400, 404):
                    self._end("session gone")

    async def _check_alive(self, exc: httpx.TransportError | None) -> None:
        """After a broken exchange: end the transport when the server no longer accepts connections."""
        if isinstance(exc, httpx.ConnectError):
            self._end("unreachable")
            return
        if self._client is None or self._closed or self._inbox.ended:
            return
        try:
            async with self._client.stream(
                "GET", self._url, headers={"accept": "application/json"}, timeout=self._timeout
            ):
                pass  # any HTTP answer means the server is alive
        except httpx.ConnectError:
            self._end("unreachable")
        except httpx.TransportError:
            pass

    def _end(self, why: str) -> None:
        if not self._inbox.ended and not self._closed:
            logger.warning("upstream %s: connection ended (%s)", self._name, why)
            self._ended = f"is not connected ({why})"
        self._inbox.end()

    # -- closing -----------------------------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        client, self._client = self._client, None
        if client is not None:
            if self._session_id is not None and not self._modern:
                with contextlib.suppress(httpx.TransportError):
                    await client.delete(
                        self._url, headers=self._session_headers(_ACCEPT_BOTH), timeout=CLOSE_TIMEOUT_SECONDS
                    )
            await self._close_client(client)
        self._inbox.end()


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read a stream's end after its answer (servers close it right away), so the connection goes back to the
    pool instead of being closed; a stream that does not end quickly is closed after all."""
    read = 0
    with contextlib.suppress(TimeoutError, httpx.TransportError):
        async with asyncio.timeout(DRAIN_SECONDS):
            async for chunk in chunks:
                read += len(chunk)
                if read > MAX_ERROR_BODY_BYTES:
                    return


def _backoff(retry_ms: int | None, failures: int) -> float:
    """Seconds before reconnecting: the server's `retry:` (or a default), doubled per failure in a row, capped."""
    base = DEFAULT_RETRY_SECONDS if retry_ms is None else retry_ms / 1000
    return float(min(base * 2 ** max(failures - 1, 0), MAX_RETRY_SECONDS))
