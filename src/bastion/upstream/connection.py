"""One upstream MCP server: its connection, handshake (either era), request correlation and supervision.

Rules:
- Bastion is the only client of this connection; every downstream session shares it. Upstream request ids are
  Bastion's own integers, so ids from different clients can never collide; each in-flight request remembers its
  owner (the downstream session and that session's request id) for routing everything that relates to it.
- Progress tokens are rewritten to connection-unique tokens and mapped back on `notifications/progress`.
- A server->client request is routed to the owner of the request it relates to (HTTP tells us), else to the only
  session with calls in flight here, else to the newest one; with no candidate it is refused.
- When the transport ends, every in-flight request fails fast with `UpstreamUnavailable`, the owner hears about it,
  and the supervisor restarts the connection with exponential backoff and jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from bastion import __version__
from bastion.config.model import ServerConfig
from bastion.errors import BastionError, UpstreamTimeout, UpstreamUnavailable
from bastion.protocol import jsonrpc, versions
from bastion.transports.base import ClientTransport, Incoming, JsonDict, RequestId

if TYPE_CHECKING:
    from bastion.telemetry.tracing import Tracer

logger = logging.getLogger("bastion.upstream")

CLIENT_INFO: Final = {"name": "bastion", "version": __version__}
UPSTREAM_CAPABILITIES: Final[JsonDict] = {
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
    "roots": {"listChanged": True},
}
"""What Bastion declares to upstreams: everything it can relay. A client without the capability gets the
upstream's request refused on its behalf."""
PROBE_TIMEOUT_SECONDS: Final = 10.0
"""How long the `server/discover` era probe may take before we fall back to the initialize handshake."""
LISTEN_TIMEOUT_SECONDS: Final = 10 * 365 * 86400.0
"""A `subscriptions/listen` request is meant to stay open for the life of the connection."""
BACKOFF_INITIAL: Final = 0.5
BACKOFF_MAX: Final = 30.0


class State(enum.StrEnum):
    CONNECTING = "connecting"
    READY = "ready"
    DOWN = "down"
    CLOSED = "closed"


class Owner(Protocol):
    """The downstream side an upstream request belongs to (a client session)."""

    session_id: str

    async def relay_request(self, message: JsonDict, related: RequestId | None) -> JsonDict:
        """Forward a server->client request to the client; returns the client's response message."""
        ...

    async def relay_notification(self, message: JsonDict, related: RequestId | None) -> None:
        """Forward a notification to the client, on the stream of `related` when given."""
        ...


@dataclass(slots=True)
class Pending:
    """An upstream request in flight."""

    future: asyncio.Future[JsonDict]
    owner: Owner | None
    downstream_id: RequestId | None
    progress_token: Any = None
    started: float = field(default_factory=time.monotonic)


ConnectionListener = Callable[["UpstreamConnection", JsonDict], Awaitable[None]]


def _expire(future: asyncio.Future[JsonDict], server: str, method: str, timeout: float) -> None:
    if not future.done():
        future.set_exception(
            UpstreamTimeout(
                f"server {server} did not answer {method} in {timeout:g}s", data={"server": server}
            )
        )


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
    ) -> None:
        self.name = name
        self.config = config
        self._factory = transport_factory
        self._transport: ClientTransport | None = None
        self._on_notification = on_notification
        self._on_state = on_state
        self.state = State.DOWN
        self.modern = False
        self.protocol_version = ""
        self.capabilities: JsonDict = {}
        self.server_info: JsonDict = {}
        self.instructions: str | None = None
        self.last_error = ""
        self.restarts = 0
        self._ids = itertools.count(1)
        self._pending: dict[RequestId, Pending] = {}
        self._progress: dict[Any, tuple[Owner, Any, RequestId | None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self._listener: asyncio.Task[None] | None = None
        self.tracer: Tracer | None = None
        """Set by telemetry when tracing is on: a client span per request, its context sent in `_meta`."""

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start supervising: connect now in the background and reconnect whenever the upstream drops."""
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name=f"upstream-{self.name}")

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until connected (or the timeout passes); True when ready."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self.state is State.READY

    async def _supervise(self) -> None:
        delay = BACKOFF_INITIAL
        while not self._closing:
            started = time.monotonic()
            try:
                await self._connect()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # supervision boundary: any failure means "down, retry later"
                self.last_error = exc.message if isinstance(exc, BastionError) else type(exc).__name__
                logger.warning("upstream %s failed to connect: %s", self.name, self.last_error)
                await self._teardown()
            else:
                assert self._reader is not None
                with contextlib.suppress(Exception):
                    await self._reader
                if self._closing:
                    return
                logger.warning("upstream %s disconnected", self.name)
                self.last_error = "disconnected"
                await self._teardown()
            if self._closing:
                return
            if time.monotonic() - started > BACKOFF_MAX:
                delay = BACKOFF_INITIAL  # it ran for a good while: start the backoff afresh
            self.restarts += 1
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter, not crypto
            delay = min(delay * 2, BACKOFF_MAX)

    async def _connect(self) -> None:
        await self._set_state(State.CONNECTING)
        transport = self._factory()
        self._transport = transport
        await transport.start()
        self._reader = asyncio.create_task(self._read(transport), name=f"upstream-{self.name}-reader")
        timeout = self.config.connect_timeout_seconds
        if self.config.protocol in ("auto", "modern") and await self._probe_modern(timeout):
            self.modern = True
        elif self.config.protocol == "modern":
            raise UpstreamUnavailable(f"server {self.name} does not speak a 2026-07-28 protocol")
        else:
            try:
                await self._handshake(timeout)
            except UpstreamUnavailable:
                # A dual-era server that was slow to start may have answered our probe late and committed to
                # the 2026-07-28 era, refusing initialize: ask again, patiently, before giving up.
                alive = self._reader is not None and not self._reader.done()
                if not (
                    self.config.protocol == "auto"
                    and alive
                    and await self._probe_modern(timeout, patient=True)
                ):
                    raise
                self.modern = True
        await self._set_state(State.READY)
        self._ready.set()
        if self.modern:
            self._listener = asyncio.create_task(self._listen(), name=f"upstream-{self.name}-listen")
        logger.info(
            "upstream %s ready (%s %s)",
            self.name,
            "modern" if self.modern else "handshake",
            self.protocol_version,
        )

    async def _probe_modern(self, timeout: float, *, patient: bool = False) -> bool:
        params = self._envelope({}, None)
        try:
            reply = await self._call(
                "server/discover",
                params,
                timeout if patient else min(timeout, PROBE_TIMEOUT_SECONDS),
                None,
                None,
            )
        except (UpstreamTimeout, UpstreamUnavailable) as exc:
            if isinstance(exc, UpstreamUnavailable) and self._reader is not None and self._reader.done():
                raise
            return False
        result = reply.get("result")
        if not isinstance(result, dict):
            return False
        supported = [v for v in result.get("supportedVersions", []) if versions.is_modern(v)]
        if not supported:
            return False
        self.protocol_version = supported[0]
        self.capabilities = result.get("capabilities") or {}
        meta = result.get("_meta") or {}
        self.server_info = meta.get(versions.META_SERVER_INFO) or result.get("serverInfo") or {}
        self.instructions = result.get("instructions")
        assert self._transport is not None
        self._transport.set_protocol_version(self.protocol_version)
        return True

    async def _listen(self) -> None:
        """2026-07-28: list_changed only arrives on a `subscriptions/listen` stream, so keep one open."""
        wanted = {
            key: True
            for key, cap in (
                ("toolsListChanged", "tools"),
                ("promptsListChanged", "prompts"),
                ("resourcesListChanged", "resources"),
            )
            if isinstance(self.capabilities.get(cap), dict) and self.capabilities[cap].get("listChanged")
        }
        if not wanted:
            return
        with contextlib.suppress(BastionError):
            await self._call(
                "subscriptions/listen",
                self._envelope({"notifications": wanted}, None),
                LISTEN_TIMEOUT_SECONDS,
                None,
                None,
            )

    async def _handshake(self, timeout: float) -> None:
        params = {
            "protocolVersion": versions.LATEST_HANDSHAKE,
            "capabilities": UPSTREAM_CAPABILITIES,
            "clientInfo": CLIENT_INFO,
        }
        reply = await self._call("initialize", params, timeout, None, None)
        result = reply.get("result")
        if not isinstance(result, dict):
            error = reply.get("error") or {}
            raise UpstreamUnavailable(f"server {self.name} refused initialize (code {error.get('code')})")
        version = result.get("protocolVersion")
        if version not in versions.HANDSHAKE_VERSIONS:
            raise UpstreamUnavailable(f"server {self.name} answered with unsupported version {version!r}")
        self.protocol_version = str(version)
        self.capabilities = result.get("capabilities") or {}
        self.server_info = result.get("serverInfo") or {}
        self.instructions = result.get("instructions")
        assert self._transport is not None
        self._transport.set_protocol_version(self.protocol_version)
        await self._transport.send(jsonrpc.notification("notifications/initialized"))

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
        self._fail_pending(
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

    def _fail_pending(self, exc: BastionError) -> None:
        pending, self._pending = self._pending, {}
        self._progress.clear()
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(exc)

    async def aclose(self) -> None:
        """Stop supervision, fail in-flight calls, close the transport (terminating a child process)."""
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
            self._supervisor = None
        await self._teardown()

    # -- requests ----------------------------------------------------------------------------------------------

    def _envelope(self, params: JsonDict, client_capabilities: JsonDict | None) -> JsonDict:
        meta = dict(params.get("_meta") or {})
        meta[versions.META_PROTOCOL_VERSION] = self.protocol_version or versions.MODERN_VERSIONS[0]
        meta[versions.META_CLIENT_CAPABILITIES] = client_capabilities or {}
        meta[versions.META_CLIENT_INFO] = CLIENT_INFO
        return {**params, "_meta": meta}

    def timeout_for(self, method: str, target: str | None) -> float:
        """The configured timeout of a request (a per-tool override wins)."""
        if method == "tools/call" and target and target in self.config.tool_timeouts:
            return self.config.tool_timeouts[target]
        return self.config.timeout_seconds

    async def request(
        self,
        method: str,
        params: JsonDict,
        *,
        owner: Owner | None = None,
        downstream_id: RequestId | None = None,
        timeout: float | None = None,
        client_capabilities: JsonDict | None = None,
    ) -> JsonDict:
        """Send a request upstream and wait for its response message (a dict with `result` or `error`).

        Raises:
            UpstreamUnavailable: the upstream is down or went down while waiting.
            UpstreamTimeout: no answer in time (a `notifications/cancelled` was sent upstream).
        """
        if self.state is not State.READY:
            raise UpstreamUnavailable(f"server {self.name} is unavailable", data={"server": self.name})
        if self.modern:
            params = self._envelope(params, client_capabilities)
        timeout = timeout or self.config.timeout_seconds
        if self.tracer is not None:
            return await self.tracer.upstream_call(
                self.name, method, params, lambda p: self._call(method, p, timeout, owner, downstream_id)
            )
        return await self._call(method, params, timeout, owner, downstream_id)

    async def _call(
        self,
        method: str,
        params: JsonDict,
        timeout: float,
        owner: Owner | None,
        downstream_id: RequestId | None,
    ) -> JsonDict:
        transport = self._transport
        if transport is None:
            raise UpstreamUnavailable(f"server {self.name} is unavailable", data={"server": self.name})
        upstream_id = next(self._ids)
        future: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
        pending = Pending(future, owner, downstream_id)
        params = self._map_progress(params, pending, owner, downstream_id)
        self._pending[upstream_id] = pending
        # A timer instead of wait_for(): one callback per call, no extra task on the hot path.
        timer = asyncio.get_running_loop().call_later(timeout, _expire, future, self.name, method, timeout)
        try:
            await transport.send(jsonrpc.request(upstream_id, method, params))
            return await future
        except UpstreamTimeout:
            await self.cancel(upstream_id, "timeout")
            raise
        except asyncio.CancelledError:
            await self.cancel(upstream_id, "cancelled by client")
            raise
        finally:
            timer.cancel()
            self._pending.pop(upstream_id, None)
            if pending.progress_token is not None:
                self._progress.pop(pending.progress_token, None)

    def _map_progress(
        self, params: JsonDict, pending: Pending, owner: Owner | None, downstream_id: RequestId | None
    ) -> JsonDict:
        meta = params.get("_meta")
        if not isinstance(meta, dict) or "progressToken" not in meta or owner is None:
            return params
        token = f"p{next(self._ids)}"
        self._progress[token] = (owner, meta["progressToken"], downstream_id)
        pending.progress_token = token
        return {**params, "_meta": {**meta, "progressToken": token}}

    async def notify(self, method: str, params: JsonDict | None = None) -> None:
        """Send a notification upstream (best effort: a down upstream just misses it)."""
        transport = self._transport
        if transport is None or self.state is not State.READY:
            return
        with contextlib.suppress(BastionError):
            await transport.send(jsonrpc.notification(method, params))

    async def cancel(self, upstream_id: RequestId, reason: str) -> None:
        """Tell the upstream to stop working on a request (`notifications/cancelled`) and stop waiting for it."""
        pending = self._pending.pop(upstream_id, None)
        if pending is not None and not pending.future.done():
            pending.future.cancel()
        await self.notify("notifications/cancelled", {"requestId": upstream_id, "reason": reason})

    def find_upstream_id(self, owner: Owner, downstream_id: RequestId) -> RequestId | None:
        """The upstream id of a downstream session's request in flight here (for cancellation)."""
        for upstream_id, pending in self._pending.items():
            if pending.owner is owner and pending.downstream_id == downstream_id:
                return upstream_id
        return None

    def forget_owner(self, owner: Owner) -> list[RequestId]:
        """Upstream ids of everything `owner` has in flight (the session is going away)."""
        return [uid for uid, p in self._pending.items() if p.owner is owner]

    # -- inbound -----------------------------------------------------------------------------------------------

    async def _read(self, transport: ClientTransport) -> None:
        async for incoming in transport.receive():
            message = incoming.message
            if "method" not in message:
                self._resolve(message)
            elif "id" in message:
                asyncio.create_task(self._serve_request(incoming))  # noqa: RUF006 - tracked by its reply
            else:
                await self._dispatch_notification(incoming)

    def _resolve(self, message: JsonDict) -> None:
        pending = self._pending.get(message.get("id"))  # type: ignore[arg-type]
        if pending is None:
            logger.debug("upstream %s answered an unknown request id", self.name)
            return
        if not pending.future.done():
            pending.future.set_result(message)

    def _owner_of(self, related: RequestId | None) -> tuple[Owner | None, RequestId | None]:
        if related is not None and (pending := self._pending.get(related)) is not None:
            return pending.owner, pending.downstream_id
        owners = [p for p in self._pending.values() if p.owner is not None]
        if not owners:
            return None, None
        newest = max(owners, key=lambda p: p.started)
        return newest.owner, newest.downstream_id

    async def _serve_request(self, incoming: Incoming) -> None:
        message = incoming.message
        request_id = message["id"]
        if message.get("method") == "ping":
            reply: JsonDict = jsonrpc.result(request_id, {})
        else:
            owner, downstream_id = self._owner_of(incoming.related)
            if owner is None:
                reply = jsonrpc.error(request_id, -32601, "no client session to relay this request to")
            else:
                try:
                    answer = await owner.relay_request(message, downstream_id)
                except BastionError as exc:
                    answer = {"error": exc.to_jsonrpc_error()}
                reply = {"jsonrpc": "2.0", "id": request_id}
                if "error" in answer:
                    reply["error"] = answer["error"]
                else:
                    reply["result"] = answer.get("result", {})
        transport = self._transport
        if transport is not None:
            with contextlib.suppress(BastionError):
                await transport.send(reply)

    async def _dispatch_notification(self, incoming: Incoming) -> None:
        message = incoming.message
        method = message["method"]
        params = message.get("params") or {}
        if method == "notifications/progress":
            route = self._progress.get(params.get("progressToken"))
            if route is not None:
                owner, token, downstream_id = route
                await owner.relay_notification(
                    {**message, "params": {**params, "progressToken": token}}, downstream_id
                )
            return
        if method == "notifications/cancelled":
            return  # a server cancelling its own request to us: our relay simply finishes unanswered
        session_level = method.endswith("/list_changed") or method == "notifications/resources/updated"
        # List changes and resource updates concern every client (and the list caches), even when a server sends
        # them on the stream of one call; only request-scoped traffic (logs of that call) goes to its owner.
        if (
            not session_level
            and incoming.related is not None
            and (pending := self._pending.get(incoming.related)) is not None
        ):
            if pending.owner is not None:
                await pending.owner.relay_notification(message, pending.downstream_id)
                return
        if self._on_notification is not None:
            await self._on_notification(self, message)

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
            "inFlight": sum(1 for p in self._pending.values() if p.owner is not None),
        }
