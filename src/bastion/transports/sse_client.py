"""Legacy HTTP+SSE (2024-11-05), client side: one long GET stream in, one POST per message out.

Rules:
- `start()` opens the GET stream and waits for the `endpoint` event; the endpoint is resolved against the SSE URL
  and refused when it names another origin (our configured credentials would go there with every POST).
- Server messages arrive as `message` events; this wire says nothing of which request they relate to.
- The wire exists for handshake revisions only, so the `server/discover` era probe is refused locally.
- A POST is answered 202; a request whose POST fails gets a JSON-RPC error response through `receive()`.
- The stream closing ends the transport: supervision reconnects and re-initializes (the session lives in the stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
import orjson

from bastion.errors import BastionError, MethodNotFound, UpstreamUnavailable, error_response
from bastion.transports.base import TransportClosed
from bastion.transports.http_common import (
    MAX_ERROR_BODY_BYTES,
    HttpClientBase,
    SseParser,
    http_error_response,
    parse_messages,
    read_bounded,
    same_origin,
    trace_headers,
)
from bastion.types import JsonDict

logger = logging.getLogger("bastion.transports.sse")


class SseClientTransport(HttpClientBase):
    """A connection from Bastion to one upstream over the legacy HTTP+SSE transport; `start()` connects."""

    def _init_state(self) -> None:
        self._endpoint: httpx.URL | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def endpoint(self) -> str | None:
        """Where messages are POSTed, once the server named it."""
        return str(self._endpoint) if self._endpoint is not None else None

    async def start(self) -> None:
        self._client = self._open_client()
        ready: asyncio.Future[httpx.URL] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(ready), name=f"sse-{self._name}")
        try:
            async with asyncio.timeout(self._timeout):
                self._endpoint = await ready
        except (TimeoutError, BastionError) as exc:
            await self.aclose()
            if isinstance(exc, BastionError):
                raise
            raise UpstreamUnavailable(
                f"server {self._name} sent no endpoint event", data={"server": self._name}
            ) from exc

    async def _read(self, ready: asyncio.Future[httpx.URL]) -> None:
        assert self._client is not None
        try:
            async with self._client.stream(
                "GET", self._url, headers={"accept": "text/event-stream"}
            ) as response:
                if response.status_code != 200:
                    raise UpstreamUnavailable(
                        f"server {self._name} answered HTTP {response.status_code}",
                        data={"server": self._name, "httpStatus": response.status_code},
                    )
                parser = SseParser(max_event_bytes=self._limit)
                async for chunk in response.aiter_bytes():
                    for event in parser.feed(chunk):
                        if event.event == "endpoint":
                            if not ready.done():
                                ready.set_result(self._resolve_endpoint(event.data))
                        elif event.event == "message" and event.data:
                            for message in parse_messages(event.data, self._name):
                                self._inbox.put(message)
        except httpx.TransportError as exc:
            if not ready.done():
                ready.set_exception(
                    UpstreamUnavailable(f"server {self._name} is unreachable", data={"server": self._name})
                )
            logger.debug("upstream %s SSE stream broke (%s)", self._name, type(exc).__name__)
        except BastionError as exc:
            if not ready.done():
                ready.set_exception(exc)
            else:
                logger.warning("upstream %s SSE stream failed (%s)", self._name, exc.reason)
        finally:
            if not ready.done():
                ready.set_exception(
                    UpstreamUnavailable(
                        f"server {self._name} closed the stream before naming an endpoint",
                        data={"server": self._name},
                    )
                )
            if not self._closed:
                logger.warning("upstream %s: SSE stream closed", self._name)
            self._inbox.end()

    def _resolve_endpoint(self, data: bytes) -> httpx.URL:
        try:
            endpoint = self._url.join(data.decode("utf-8").strip())
        except (UnicodeDecodeError, httpx.InvalidURL) as exc:
            raise UpstreamUnavailable(
                f"server {self._name} sent an invalid endpoint", data={"server": self._name}
            ) from exc
        if not same_origin(endpoint, self._url):
            raise UpstreamUnavailable(
                f"server {self._name} named an endpoint on another origin", data={"server": self._name}
            )
        return endpoint

    def set_protocol_version(self, version: str) -> None:
        """Nothing to send: this wire predates the `MCP-Protocol-Version` header."""

    async def send(self, message: JsonDict) -> None:
        client, endpoint = self._client, self._endpoint
        if client is None or endpoint is None or self._closed or self._inbox.ended:
            raise TransportClosed(f"server {self._name} is not connected", data={"server": self._name})
        request_id = message.get("id") if "method" in message else None
        if request_id is not None and message["method"] == "server/discover":
            # This wire is defined for handshake revisions only: refuse the era probe here, so the connection
            # falls back to initialize at once (instead of waiting for a server that never answers it).
            self._inbox.put(
                error_response(request_id, MethodNotFound("server/discover is not available over HTTP+SSE")),
                request_id,
            )
            return
        headers = {"content-type": "application/json"}
        trace_headers(message, headers)
        try:
            # Bounded read: the answer is a bare 202, and the caller awaits this POST.
            async with client.stream(
                "POST", endpoint, content=orjson.dumps(message), headers=headers, timeout=self._timeout
            ) as response:
                status = response.status_code
                if 200 <= status < 300:
                    return
                body = b""
                with contextlib.suppress(httpx.TransportError, BastionError):
                    body = await read_bounded(response, MAX_ERROR_BODY_BYTES)
        except httpx.TransportError as exc:
            if request_id is None:
                logger.warning("upstream %s: a POST failed (%s)", self._name, type(exc).__name__)
                return
            self._inbox.fail(
                request_id,
                UpstreamUnavailable(
                    f"server {self._name} failed ({type(exc).__name__})", data={"server": self._name}
                ),
            )
            return
        if request_id is None:
            logger.warning("upstream %s: a POST answered HTTP %d", self._name, status)
            return
        self._inbox.put(http_error_response(request_id, status, body, self._name), request_id)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        client, self._client = self._client, None
        if client is not None:
            await self._close_client(client)
        self._inbox.end()
