"""`H1Client`: a lean HTTP/1.1 client for the upstream hop, on asyncio protocols and the httptools parser.

httpx's default transport (httpcore over anyio streams) spends about as much CPU per upstream call as the rest of
the proxy hop (measured: ~460 us of client CPU per request against ~20 us here): request and response model
objects, header merging, a pool lock, a socket-readable probe on every reuse, h11's pure-Python parser, anyio's
stream wrappers. This client keeps the subset of httpx's API the upstream transports use (`stream()`,
`delete()`, `aclose()`) and httpx's exception classes, so callers need not know which client they hold, and does
the rest with one `asyncio.Protocol` per connection, responses parsed in C by httptools (the parser uvicorn
already uses for our own server side) and each request written with one `write()`.

Rules:
- One request at a time per connection; a connection returns to the pool only after its response was read to the
  end and the server allowed keep-alive. A response closed early closes its connection (its bytes are unread).
  GET streams always open a fresh connection (see `send`).
- A connection the server closed while idle is known at once (`connection_lost`), so reuse needs no probe; idle
  connections older than `keepalive_expiry` are closed instead of reused.
- Header names and values are checked for CR, LF and NUL before anything is written (no header injection).
- Reads are bounded by flow control: past `HIGH_WATER` unread bytes the socket is paused until the reader catches up.
- Failures surface as httpx's exceptions (`ConnectError`, `ConnectTimeout`, `PoolTimeout`, `ReadTimeout`,
  `ReadError`, `WriteError`, `RemoteProtocolError`, `LocalProtocolError`), so callers need not know the transport.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final, cast, overload

import httptools
import httpx

HIGH_WATER: Final = 256 * 1024
"""Bytes of a response buffered unread before the connection stops reading from its socket."""


MAX_TARGETS: Final = 64
"""Parsed URLs a client keeps (an SSE endpoint URL may change with every reconnect)."""


def _illegal(value: bytes) -> bool:
    return b"\r" in value or b"\n" in value or b"\0" in value


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection and the response in progress on it (httptools calls the `on_*`)."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_eof_body",
        "_headers",
        "_headers_done",
        "_paused",
        "_waiter",
        "closed",
        "complete",
        "error",
        "idle_since",
        "keep_alive",
        "key",
        "parser",
        "transport",
    )

    def __init__(self, key: tuple[str, str, int]) -> None:
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser: httptools.HttpResponseParser | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._headers_done: asyncio.Future[None] | None = None
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._eof_body = False
        """The response has neither Content-Length nor chunked framing: its body ends when the server closes."""
        self._waiter: asyncio.Future[None] | None = None
        self.complete = False
        self.keep_alive = False
        self.closed = False
        self.error: httpx.TransportError | None = None
        self.idle_since = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        if self.parser is None:  # bytes nobody asked for: the connection cannot be trusted any more
            self._fail(httpx.RemoteProtocolError("unexpected data from the server"))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid HTTP response ({type(exc).__name__})"))

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is None and self._eof_body and not self.complete:
            self.complete = True  # the close is the end of this body (and of the connection)
        if self.parser is not None and not self.complete and self.error is None:
            self.error = (
                httpx.ReadError("connection lost")
                if exc is not None
                else httpx.RemoteProtocolError("server disconnected without sending a complete response")
            )
        self._wake()
        if self._headers_done is not None and not self._headers_done.done():
            self._headers_done.set_exception(self.error or httpx.ReadError("connection lost"))

    # -- httptools callbacks ---------------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        status = self.parser.get_status_code()
        framed = any(n.lower() in (b"content-length", b"transfer-encoding") for n, _ in self._headers)
        self._eof_body = not framed and status not in (204, 304) and status >= 200
        if self._headers_done is not None and not self._headers_done.done():
            self._headers_done.set_result(None)

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        if self._buffered > HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.complete = True
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()
        self._wake()

    # -- one exchange ----------------------------------------------------------------------------------------

    def _fail(self, error: httpx.TransportError) -> None:
        if self.error is None:
            self.error = error
        self._wake()
        if self._headers_done is not None and not self._headers_done.done():
            self._headers_done.set_exception(error)
        self.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def begin(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """Reset for a new response; returns the future that resolves once its headers arrived."""
        self.parser = httptools.HttpResponseParser(self)
        self._headers = []
        self._chunks.clear()
        self._buffered = 0
        self._eof_body = False
        self.complete = False
        self.keep_alive = False
        self.error = None
        self._headers_done = loop.create_future()
        return self._headers_done

    def response_head(self) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        assert self.parser is not None
        version = self.parser.get_http_version()
        return self.parser.get_status_code(), self._headers, f"HTTP/{version}".encode()

    async def next_chunk(self, read_timeout: float | None) -> bytes | None:
        """The next piece of the body, or None at its end; raises the connection's error."""
        while True:
            if self._chunks:
                chunk = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
                self._chunks.clear()
                self._buffered = 0
                if self._paused and self.transport is not None and not self.closed:
                    self._paused = False
                    self.transport.resume_reading()
                return chunk
            if self.error is not None:
                raise self.error
            if self.complete:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                if read_timeout is None:
                    await self._waiter
                else:
                    try:
                        async with asyncio.timeout(read_timeout):
                            await self._waiter
                    except TimeoutError:
                        self.close()
                        raise httpx.ReadTimeout("timed out reading the response") from None
            finally:
                self._waiter = None

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class ResponseHeaders:
    """Response headers by lower-case name (a repeated header's values joined with `, `, as httpx does)."""

    __slots__ = ("_values",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        values: dict[str, str] = {}
        for name, value in raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            values[key] = f"{values[key]}, {text}" if key in values else text
        self._values = values

    @overload
    def get(self, name: str) -> str | None: ...

    @overload
    def get(self, name: str, default: str) -> str: ...

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._values.get(name.lower(), default)


class H1Response:
    """A response whose body is read straight off its connection; closing it hands the connection back."""

    __slots__ = ("_client", "_conn", "_released", "_timeout", "headers", "status_code")

    def __init__(self, client: H1Client, conn: _Connection, read_timeout: float | None) -> None:
        status, raw, _version = conn.response_head()
        self.status_code = status
        self.headers = ResponseHeaders(raw)
        self._client = client
        self._conn = conn
        self._timeout = read_timeout
        self._released = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while (chunk := await conn.next_chunk(self._timeout)) is not None:
            yield chunk

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    def aclose(self) -> None:
        if not self._released:
            self._released = True
            self._client.release(self._conn)


class _Streaming:
    """`async with client.stream(...) as response`: the response, released on exit however the block ends."""

    __slots__ = ("_args", "_client", "_response")

    def __init__(self, client: H1Client, args: tuple[Any, ...]) -> None:
        self._client = client
        self._args = args
        self._response: H1Response | None = None

    async def __aenter__(self) -> H1Response:
        self._response = await self._client.send(*self._args)
        return self._response

    async def __aexit__(self, *exc: object) -> None:
        if self._response is not None:
            self._response.aclose()


_DEFAULT: Final[Any] = object()
"""`timeout` not given: the client's own timeouts apply."""


class _Target:
    """A parsed URL: where to connect and what goes on the request line."""

    __slots__ = ("host_header", "key", "path")

    def __init__(self, url: str) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {parsed.scheme!r}")
        default_port = 443 if parsed.scheme == "https" else 80
        port = parsed.port or default_port
        host = parsed.host
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        self.key = (parsed.scheme, parsed.host, port)
        self.host_header = (host if port == default_port else f"{host}:{port}").encode("ascii")
        self.path = parsed.raw_path
        if _illegal(self.path):
            raise httpx.LocalProtocolError("illegal character in the request target")


class H1Client:
    """A pool of HTTP/1.1 keep-alive connections per origin (plain or TLS), with default headers.

    The subset of `httpx.AsyncClient` the upstream transports use: `stream()`, `delete()`, `aclose()`.
    """

    def __init__(
        self,
        headers: Mapping[str, str],
        *,
        timeout: float,
        connect_timeout: float,
        max_connections: int,
        max_keepalive_connections: int,
        keepalive_expiry: float,
    ) -> None:
        """Args:
        headers: Sent on every request unless the request sets the same header (credentials: never logged).
        timeout: Seconds for waiting on a pooled connection, and the read timeout of calls that pass theirs.
        connect_timeout: Seconds for opening a TCP/TLS connection.
        max_connections: Requests in flight at once; more wait for a slot up to `timeout`.
        max_keepalive_connections: Idle connections kept per origin.
        keepalive_expiry: Seconds an idle connection may be reused.
        """
        self._defaults: dict[str, bytes] = {}
        for name, value in headers.items():
            raw = value.encode("latin-1") if isinstance(value, str) else bytes(value)
            if _illegal(name.encode("latin-1")) or _illegal(raw):
                raise ValueError(f"header {name!r} contains CR, LF or NUL")
            self._defaults[name.lower()] = raw
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max = max_connections
        self._max_idle = max_keepalive_connections
        self._expiry = keepalive_expiry
        self._ssl: ssl.SSLContext | None = None
        self._targets: dict[str, _Target] = {}
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._active = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    # -- requests --------------------------------------------------------------------------------------------

    def stream(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        content: bytes = b"",
        headers: Mapping[str, str] | None = None,
        timeout: float | None = _DEFAULT,
    ) -> _Streaming:
        """Send a request; the response body is read inside the `async with` block (connection released after).

        `timeout` (seconds) bounds the wait for the response head and for each later read; by default a
        response may take as long as it needs (the caller's own timer bounds it).
        """
        return _Streaming(self, (method, str(url), content, headers, timeout))

    async def delete(
        self,
        url: str | httpx.URL,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = _DEFAULT,
    ) -> H1Response:
        """A DELETE whose (small) answer is read and discarded."""
        response = await self.send("DELETE", str(url), b"", headers, timeout)
        try:
            async for _ in response.aiter_bytes():
                pass
        finally:
            response.aclose()
        return response

    async def send(
        self,
        method: str,
        url: str,
        content: bytes,
        headers: Mapping[str, str] | None,
        timeout: float | None,
    ) -> H1Response:
        """One exchange up to the response head (`stream()` is the way to call it)."""
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) >= MAX_TARGETS:
                self._targets.clear()
            target = self._targets[url] = _Target(url)
        head = self._head(method, target, content, headers)
        pool_timeout = self._timeout if timeout is _DEFAULT else timeout
        connect_timeout = self._connect_timeout
        if timeout is not _DEFAULT and timeout is not None:
            connect_timeout = min(connect_timeout, timeout)
        read_timeout = None if timeout is _DEFAULT else timeout
        await self._acquire_slot(pool_timeout)
        conn: _Connection | None = None
        try:
            # GETs (SSE streams: the standalone one, resumptions) are rare and long-lived: each takes a fresh
            # connection, since a server that just ended an SSE response may still be tearing that stream down
            # on its connection (the MCP SDK's server then loses an event of the resumed stream).
            reused = self._reuse(target.key) if method != "GET" else None
            conn = reused or await self._connect(target.key, connect_timeout)
            headers_done = conn.begin(asyncio.get_running_loop())
            transport = conn.transport
            if transport is None or conn.closed:
                raise httpx.WriteError("connection closed before the request was sent")
            transport.write(head + content if len(content) < 65536 else head)
            if len(content) >= 65536:
                transport.write(content)
            try:
                if read_timeout is None:
                    await headers_done
                else:
                    async with asyncio.timeout(read_timeout):
                        await headers_done
            except TimeoutError:
                raise httpx.ReadTimeout("timed out waiting for the response") from None
        except BaseException:
            if conn is not None:
                conn.close()
            self._release_slot()
            raise
        return H1Response(self, conn, read_timeout)

    def _head(self, method: str, target: _Target, content: bytes, headers: Mapping[str, str] | None) -> bytes:
        parts = [
            method.encode("ascii"),
            b" ",
            target.path,
            b" HTTP/1.1\r\nhost: ",
            target.host_header,
            b"\r\n",
        ]
        given: set[str] = set()
        if headers:
            for name, value in headers.items():
                key = name.lower()
                raw = value.encode("latin-1")
                if _illegal(raw) or _illegal(key.encode("latin-1")):
                    raise httpx.LocalProtocolError("illegal character in a header")
                given.add(key)
                parts += (key.encode("latin-1"), b": ", raw, b"\r\n")
        for key, raw in self._defaults.items():
            if key not in given:
                parts += (key.encode("latin-1"), b": ", raw, b"\r\n")
        if content or method == "POST":
            parts += (b"content-length: ", str(len(content)).encode("ascii"), b"\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    # -- the pool --------------------------------------------------------------------------------------------

    async def _acquire_slot(self, timeout: float | None) -> None:
        if self._closed:
            raise httpx.ConnectError("the client is closed")
        while self._active >= self._max:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(timeout):
                    await waiter
            except TimeoutError:
                raise httpx.PoolTimeout("no connection available in time") from None
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._active += 1

    def _release_slot(self) -> None:
        self._active -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def release(self, conn: _Connection) -> None:
        """A response is done with its connection: keep it for reuse if it is clean, else close it."""
        if conn.reusable() and not self._closed:
            idle = self._idle.setdefault(conn.key, [])
            if len(idle) < self._max_idle:
                conn.parser = None
                conn.idle_since = time.monotonic()
                idle.append(conn)
            else:
                conn.close()
        else:
            conn.close()
        self._release_slot()

    def _reuse(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        now = time.monotonic()
        while idle:
            conn = idle.pop()  # the most recently used: the least likely to have been closed by the server
            if not conn.closed and now - conn.idle_since < self._expiry:
                return conn
            conn.close()
        return None

    async def _connect(self, key: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = httpx.create_ssl_context()  # httpx's own defaults (certifi, SSL_CERT_FILE)
            tls = self._ssl
        try:
            async with asyncio.timeout(timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(key), host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout("timed out connecting to the server") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"connection failed ({type(exc).__name__})") from exc
        return conn

    async def aclose(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()
