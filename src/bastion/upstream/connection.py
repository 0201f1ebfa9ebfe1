"""One upstream MCP server: its connection and supervision, the async adapter around its correlation.

What each upstream message is tied to (request ids, progress tokens, server->client requests) is decided in one
module, `pending.py` (`Correlation`); the era negotiation is `negotiate.py`, which uses only the public surface here
(`raw_request`, `envelope`, `reading`).

Rules:
- Bastion is the only client of this connection; every downstream session shares it. Upstream request ids are
  Bastion's own integers, so ids from different clients can never collide; each in-flight request remembers its
  owner (the downstream session and that session's request id) for routing everything that relates to it.
- Progress tokens are rewritten to connection-unique tokens and mapped back on `notifications/progress`.
- What the upstream sends is served by `inbound.Inbound`: one bad message is logged and dropped, and the reader
  keeps serving every other message.
- A connection serves one scope (`association.Scope`: a session, a principal, or everyone). Server->client
  requests, logs and resource updates reach only the audience `association.RULES` names for the connection's
  transport, isolation and message kind; a request with no audience is refused to the upstream, never guessed.
- When the transport ends, every in-flight request fails fast with `UpstreamUnavailable`, the owner hears about it,
  and the supervisor restarts the connection with exponential backoff and jitter.
- Every request is bounded by its timer, the send included (a child that stops reading its stdin cannot hold a
  caller). A timed-out or cancelled request is cancelled upstream in the background, so the caller's error is
  never delayed by the upstream. Client calls in flight are capped by `max_concurrent` (over it: `RateLimited`).
- Timeouts and transport failures feed the circuit breaker (`breaker.py`); while it is open, calls fail fast and
  the upstream counts as unavailable (its tools leave the lists). `health.py` runs the checks and the probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

from bastion.errors import (
    BastionError,
    RateLimited,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from bastion.protocol import jsonrpc, versions
from bastion.transports.base import ClientTransport, JsonDict, RequestId
from bastion.upstream import negotiate
from bastion.upstream.association import Call, Isolation, Scope, default_isolation
from bastion.upstream.breaker import BACKOFF_MAX, Backoff, CircuitBreaker, CircuitState
from bastion.upstream.config import ServerConfig
from bastion.upstream.health import HealthMonitor
from bastion.upstream.inbound import ConnectionListener, Inbound
from bastion.upstream.negotiate import Negotiated
from bastion.upstream.pending import Correlation, Owner, Pending, expire, transport_failure

__all__ = ["ConnectionListener", "Owner", "Pending", "State", "UpstreamConnection"]

UpstreamCall = Callable[[JsonDict], Awaitable[JsonDict]]
"""Sends one request upstream with the params given (the tracer may add its context to `_meta`)."""


class UpstreamTracer(Protocol):
    """A client span per upstream request (`telemetry.tracing.Tracer`; the upstream side knows no telemetry)."""

    async def upstream_call(self, server: str, method: str, params: JsonDict, call: UpstreamCall) -> JsonDict:
        """Send one request through `call` inside a span, its context in the request's `_meta`."""
        ...


SHARED_SCOPE: Final = Scope(isolation=Isolation.SHARED)
"""The scope of a connection every session may use."""

logger = logging.getLogger("bastion.upstream")

CANCEL_FLUSH_SECONDS: Final = 1.0
"""At close, how long pending `notifications/cancelled` may take to go out before the transport is closed."""


class State(enum.StrEnum):
    CONNECTING = "connecting"
    READY = "ready"
    DOWN = "down"
    CLOSED = "closed"


class UpstreamConnection:
    """A supervised connection to one upstream server."""

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        transport_factory: Callable[[], ClientTransport],
        *,
        on_notification: ConnectionListener | None = None,
        on_state: Callable[[UpstreamConnection], Awaitable[None]] | None = None,
        scope: Scope = SHARED_SCOPE,
        scope_owner: Owner | None = None,
    ) -> None:
        self.name = name
        self.scope = scope
        """Whom this connection serves (`servers.<name>.isolation`)."""
        self.scope_owner = scope_owner
        """The downstream session of a `session`-scoped connection."""
        self.correlation = Correlation(scope=scope, transport=config.transport, scope_owner=scope_owner)
        """What each upstream message is tied to: requests in flight, progress tokens, server requests."""
        self.allowed_tools: frozenset[str] | None = None
        """Set on a scoped connection once its own tool list passed the pins check: only these may be called."""
        self.config = config
        self.isolation = (
            Isolation(config.isolation) if config.isolation else default_isolation(config.transport)
        )
        """How calls to this server are isolated (`servers.<name>.isolation`, else the transport's default)."""
        self._factory = transport_factory
        self._transport: ClientTransport | None = None
        self._inbound = Inbound(self, on_notification)
        self._on_state = on_state
        self.state = State.DOWN
        self.modern = False
        self.protocol_version = ""
        self.capabilities: JsonDict = {}
        self.server_info: JsonDict = {}
        self.instructions: str | None = None
        self.last_error = ""
        self.restarts = 0
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self._listener: asyncio.Task[None] | None = None
        self.tracer: UpstreamTracer | None = None
        """Set by telemetry when tracing is on: a client span per request, its context sent in `_meta`."""
        self.breaker = CircuitBreaker(config.breaker)
        self.monitor = HealthMonitor(self)
        self._monitor: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._active = 0
        self.last_call_end = time.monotonic()
        """When the last client call here ended (the pool reaps connections idle since)."""
        self._down_reason = ""

    @property
    def transport_factory(self) -> Callable[[], ClientTransport]:
        """How this connection makes its transport (a twin of another era, a scoped connection reuse it)."""
        return self._factory

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start supervising: connect now in the background and reconnect whenever the upstream drops."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"upstream-{self.name}")
            self._monitor = asyncio.create_task(self.monitor.run(), name=f"upstream-{self.name}-health")

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until connected (or the timeout passes); True when ready."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        return self.state is State.READY

    async def _supervise(self) -> None:
        backoff = Backoff()
        while not self._closing:
            started = time.monotonic()
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - supervision boundary: any failure means "down, retry later"
                self.last_error = exc.message if isinstance(exc, BastionError) else type(exc).__name__
                logger.warning("upstream %s failed to connect: %s", self.name, self.last_error)
                await self._teardown()
            else:
                assert self._reader is not None
                with contextlib.suppress(Exception):
                    await self._reader
                if self._closing:
                    return
                self.last_error, self._down_reason = self._down_reason or "disconnected", ""
                logger.warning("upstream %s disconnected (%s)", self.name, self.last_error)
                await self._teardown()
            if self._closing:
                return
            if time.monotonic() - started > BACKOFF_MAX:
                backoff.reset()  # it ran for a good while: start the backoff afresh
            self.restarts += 1
            await asyncio.sleep(backoff.next())

    async def _connect(self) -> None:
        await self._set_state(State.CONNECTING)
        transport = self._factory()
        self._transport = transport
        await transport.start()
        self._reader = asyncio.create_task(self._read(transport), name=f"upstream-{self.name}-reader")
        timeout = self.config.connect_timeout_seconds
        learned = None
        if self.config.protocol in ("auto", "modern"):
            learned = await negotiate.probe_modern(self, timeout)
        if learned is None and self.config.protocol == "modern":
            raise UpstreamUnavailable(f"server {self.name} does not speak a 2026-07-28 protocol")
        if learned is None:
            try:
                self._adopt(await negotiate.handshake(self, timeout))
                await transport.send(jsonrpc.notification("notifications/initialized"))
            except UpstreamUnavailable:
                # A dual-era server that was slow to start may have answered our probe late and committed to
                # the 2026-07-28 era, refusing initialize: ask again, patiently, before giving up.
                if self.config.protocol != "auto" or not self.reading:
                    raise
                learned = await negotiate.probe_modern(self, timeout, patient=True)
                if learned is None:
                    raise
        if learned is not None:
            self._adopt(learned)
        self.breaker.reset()  # a fresh connection is a successful probe
        if self.modern:
            # The listen stream is open before anyone is told the upstream is ready: a change made by the first
            # call would otherwise send its list_changed to no one.
            opened = asyncio.Event()
            self._listener = asyncio.create_task(
                negotiate.listen(self, opened), name=f"upstream-{self.name}-listen"
            )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await opened.wait()
        await self._set_state(State.READY)
        self._ready.set()
        logger.info(
            "upstream %s ready (%s %s)",
            self.name,
            "modern" if self.modern else "handshake",
            self.protocol_version,
        )

    def _adopt(self, learned: Negotiated) -> None:
        """What negotiation learned becomes the connection's, and the transport's version."""
        self.modern = learned.modern
        self.protocol_version = learned.protocol_version
        self.capabilities = learned.capabilities
        self.server_info = learned.server_info
        self.instructions = learned.instructions
        if self._transport is not None:
            self._transport.set_protocol_version(learned.protocol_version)

    @property
    def reading(self) -> bool:
        """Whether the reader still receives from the transport (an ended one means the upstream went away)."""
        return self._reader is not None and not self._reader.done()

    async def _teardown(self) -> None:
        self._ready.clear()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
        transport, self._transport = self._transport, None
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        # Down first, so nobody is routed here while in-flight calls are being failed.
        await self._set_state(State.CLOSED if self._closing else State.DOWN)
        self.correlation.fail_all(
            UpstreamUnavailable(f"server {self.name} is unavailable", data={"server": self.name})
        )
        if transport is not None:
            with contextlib.suppress(Exception):
                await transport.aclose()

    async def _set_state(self, state: State) -> None:
        if state is self.state:
            return
        self.state = state
        if self._on_state is not None:
            try:
                await self._on_state(self)
            except Exception:  # a listener's bug must not stop supervision
                logger.exception("state listener failed for upstream %s", self.name)

    async def aclose(self) -> None:
        """Stop supervision, fail in-flight calls, close the transport (terminating a child process)."""
        self._closing = True
        for task in (self._monitor, self._supervisor):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._monitor = self._supervisor = None
        if self._background:  # cancellations of calls just abandoned (stdin EOF, shutdown) go out first
            await asyncio.wait(list(self._background), timeout=CANCEL_FLUSH_SECONDS)
        await self._teardown()

    # -- requests ----------------------------------------------------------------------------------------------

    def envelope(self, params: JsonDict, client_capabilities: JsonDict | None = None) -> JsonDict:
        """`params` with the 2026-07-28 `_meta` envelope of this connection's hop."""
        meta = dict(params.get("_meta") or {})
        meta[versions.META_PROTOCOL_VERSION] = self.protocol_version or versions.MODERN_VERSIONS[0]
        meta[versions.META_CLIENT_CAPABILITIES] = client_capabilities or {}
        meta[versions.META_CLIENT_INFO] = negotiate.CLIENT_INFO
        return {**params, "_meta": meta}

    def timeout_for(self, method: str, target: str | None) -> float:
        """The configured timeout of a request (a per-tool override wins)."""
        if method == "tools/call" and target and target in self.config.tool_timeouts:
            return self.config.tool_timeouts[target]
        return self.config.timeout_seconds

    def request(
        self,
        method: str,
        params: JsonDict,
        *,
        owner: Owner | None = None,
        downstream_id: RequestId | None = None,
        timeout: float | None = None,
        client_capabilities: JsonDict | None = None,
    ) -> Awaitable[JsonDict]:
        """Send a request upstream; awaiting it gives its response message (a dict with `result` or `error`).

        The checks run at once, the exchange when awaited: one coroutine per request, no wrapper around it.

        Raises:
            UpstreamUnavailable: the upstream is down, its circuit is open, or it went down while waiting.
            UpstreamTimeout: no answer in time (a `notifications/cancelled` goes upstream).
            RateLimited: `max_concurrent` client calls are in flight to this upstream already.
        """
        if self.state is not State.READY:
            raise UpstreamUnavailable(
                f"server {self.name} is unavailable", data={"server": self.name, "state": str(self.state)}
            )
        if self.breaker.state is not CircuitState.CLOSED:  # `breaker.closed`, without a call per request
            raise self._circuit_open()
        if self.modern:
            params = self.envelope(params, client_capabilities)
        timeout = timeout or self.config.timeout_seconds
        if self.tracer is not None:
            return self.tracer.upstream_call(
                self.name,
                method,
                params,
                lambda p: self._call(method, p, timeout, owner, downstream_id, True),
            )
        return self._call(method, params, timeout, owner, downstream_id, True)

    def _circuit_open(self) -> UpstreamUnavailable:
        breaker = self.breaker
        return UpstreamUnavailable(
            f"server {self.name} is unavailable: circuit open after {breaker.failures or breaker.config.failures}"
            f" failed calls in a row ({breaker.reason})",
            data={
                "server": self.name,
                "circuit": str(breaker.state),
                "retryAfter": max(1, round(breaker.retry_in(time.monotonic()))),
            },
        )

    def _failed(self, reason: str) -> None:
        # Calls failed by a disconnect are supervision's business: only failures of a live connection count.
        if self.state is State.READY and self.breaker.record_failure(time.monotonic(), reason):
            logger.warning("upstream %s: circuit opened (%s)", self.name, reason)
            self.circuit_changed()

    def circuit_changed(self) -> None:
        """The circuit opened or closed: re-plan the monitor, tell the gateway (notice, lists) in the background."""
        self.monitor.wake.set()
        if self._on_state is not None:
            self._spawn(self._on_state(self))

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def busy(self) -> bool:
        """Client calls are in flight here (the pool never reaps a busy connection)."""
        return self._active > 0

    @property
    def ready(self) -> bool:
        """Connected (whatever the circuit says)."""
        return self.state is State.READY

    @property
    def available(self) -> bool:
        """Connected and the circuit closed: calls are routed here and its tools are listed."""
        return self.state is State.READY and self.breaker.state is CircuitState.CLOSED

    async def until_ready(self) -> None:
        """Wait (unbounded: for the health monitor) until connected."""
        await self._ready.wait()

    async def probe(self, timeout: float) -> bool:
        """One health check: `ping`, or `server/discover` for 2026-07-28 (no ping); any answer means alive."""
        method, params = ("server/discover", self.envelope({})) if self.modern else ("ping", {})
        try:
            reply = await self.raw_request(method, params, timeout)
        except UpstreamError:
            return False
        return not transport_failure(reply, self.name)

    async def mark_down(self, reason: str) -> None:
        """Give up on a connection that stopped answering: close it; supervision reconnects with backoff."""
        transport = self._transport
        if transport is None or self.state is not State.READY:
            return
        logger.warning("upstream %s marked down: %s", self.name, reason)
        self._down_reason = reason
        # Whatever closing does, the reader ends and supervision takes over.
        with contextlib.suppress(Exception):
            await transport.aclose()

    async def raw_request(
        self, method: str, params: JsonDict, timeout: float, sent: asyncio.Event | None = None
    ) -> JsonDict:
        """A request of Bastion's own (negotiation, health probes): no owner, no state check, no breaker.

        `sent` is set once the request is written (or its send failed), for a caller that must not go on before.

        Raises:
            UpstreamUnavailable: no transport, or the upstream went down while waiting.
            UpstreamTimeout: no answer in time.
        """
        return await self._call(method, params, timeout, None, None, sent=sent)

    async def _call(
        self,
        method: str,
        params: JsonDict,
        timeout: float,
        owner: Owner | None,
        downstream_id: RequestId | None,
        checked: bool = False,
        sent: asyncio.Event | None = None,
    ) -> JsonDict:
        """One request's exchange; `checked` ones (not Bastion's own) count against `max_concurrent` and the
        circuit breaker."""
        transport = self._transport
        if transport is None:
            raise UpstreamUnavailable(f"server {self.name} is unavailable", data={"server": self.name})
        counted = checked and owner is not None
        if counted and self._active >= self.config.max_concurrent:
            raise RateLimited(
                f"server {self.name} has too many calls in flight",
                data={"server": self.name, "limit": self.config.max_concurrent, "retryAfter": 1},
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[JsonDict] = loop.create_future()
        pending = Pending(future, owner, downstream_id)
        upstream_id, params = self.correlation.open(pending, params)
        # A timer instead of wait_for(): one callback per call, no extra task on the hot path.
        timer = loop.call_later(timeout, expire, pending, self.name, method, timeout)
        if counted:
            self._active += 1  # undone in the `finally` below, whatever happens
        try:
            task = pending.sender = asyncio.current_task()
            cancelling = task.cancelling() if task is not None else 0
            try:
                await transport.send(jsonrpc.request(upstream_id, method, params))
            except asyncio.CancelledError:
                # The timer interrupted a send that blocked (the upstream stopped reading): a timeout, not a cancel.
                if not pending.send_expired or task is None or task.uncancel() > cancelling:
                    raise
            finally:
                pending.sender = None
                if sent is not None:
                    sent.set()
            reply = await future
        except UpstreamTimeout as exc:
            self._cancel_soon(upstream_id, "timeout")
            if checked:
                self._failed(str(exc.reason))
            raise
        except UpstreamError as exc:
            if checked:
                self._failed(str(exc.reason))
            raise
        except asyncio.CancelledError:
            self._cancel_soon(upstream_id, "cancelled by client")
            raise
        finally:
            timer.cancel()
            self.correlation.close(upstream_id)
            if counted:
                self._active -= 1
                self.last_call_end = time.monotonic()
        if checked:
            if transport_failure(reply, self.name):
                self._failed("transport")
            elif self.breaker.record_success():
                self.circuit_changed()
        return reply

    async def notify(self, method: str, params: JsonDict | None = None) -> None:
        """Send a notification upstream (best effort: a down upstream just misses it)."""
        transport = self._transport
        if transport is None or self.state is not State.READY:
            return
        with contextlib.suppress(BastionError):
            await transport.send(jsonrpc.notification(method, params))

    async def cancel(self, upstream_id: RequestId, reason: str) -> None:
        """Tell the upstream to stop working on a request (`notifications/cancelled`) and stop waiting for it."""
        pending = self.correlation.close(upstream_id)
        if pending is not None and not pending.future.done():
            pending.future.cancel()
        await self.notify("notifications/cancelled", {"requestId": upstream_id, "reason": reason})

    def _cancel_soon(self, upstream_id: RequestId, reason: str) -> None:
        """`cancel()` in the background: the caller's error must not wait on an upstream that may be stuck."""
        if self.state is State.READY:
            self._spawn(self.cancel(upstream_id, reason))

    # -- inbound ---------------------------------------------------------------------------------------------

    async def _read(self, transport: ClientTransport) -> None:
        await self._inbound.read(transport)

    def calls(self) -> list[Call]:
        """The client calls in flight here, as association data."""
        return self.correlation.calls()

    def owners(self) -> dict[str, Owner]:
        """The sessions with calls in flight here (and a `session` scope's own session), by session id."""
        return self.correlation.owners()

    def call_for(self, related: RequestId | None) -> Call | None:
        """The client call an upstream message relates to (the transport's `related`), if it is one."""
        return self.correlation.call_for(related)

    def describe(self) -> JsonDict:
        """State for /readyz and the dashboard (no secrets: no URL credentials, no headers, no env)."""
        return {
            "state": str(self.state),
            "transport": self.config.transport,
            "protocol": self.protocol_version,
            "modern": self.modern,
            "server": self.server_info.get("name", ""),
            "restarts": self.restarts,
            "lastError": self.last_error,
            "inFlight": self.correlation.client_calls_in_flight(),
            "maxConcurrent": self.config.max_concurrent,
            "available": self.available,
            "circuit": self.breaker.describe(time.monotonic()),
            "healthChecks": self.monitor.checks,
        }
