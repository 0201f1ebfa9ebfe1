"""The client-facing ASGI app: `/mcp` (Streamable HTTP, both eras), `/sse` + `/messages` (HTTP+SSE), health.

Layers, outermost first (each knows nothing of the ones inside it):
  CatchAllMiddleware -> HostOriginMiddleware -> BodyLimitMiddleware -> [`wrap`: authentication...] -> routing
Routing sends the MCP and health paths straight to their endpoints (a dict lookup, no Starlette request objects);
everything else (colleagues' `/metrics`, `/api`, `/ui`) goes to a Starlette router that also owns the lifespan.

Startup: the lifespan opens the gateway (stores, upstream supervision) and returns at once, so `/healthz` answers
within moments of start whatever the upstreams do; every other path waits (at most the upstreams' connect timeout)
until the upstreams connected or timed out, so the first clients still find them, and `/readyz` says not ready
until then.

Shutdown: the lifespan starts the gateway and closes it last. When the server is told to stop (SIGTERM/SIGINT,
seen by chaining uvicorn's handler), Bastion drains: `/readyz` turns 503, new work is refused with 503, idle
long-lived streams (GET streams, `subscriptions/listen`, idle legacy streams) end at once, and calls in flight get
up to `limits.shutdown_grace_seconds` (counted from the signal) to finish before the gateway closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.errors import BastionError, http_error
from bastion.server.legacy import LegacySse
from bastion.server.middleware import BodyLimitMiddleware, CatchAllMiddleware, HostOriginMiddleware
from bastion.server.reply import Outlet
from bastion.server.streamable import StreamableEndpoint
from bastion.server.wire import Rejections, send_empty, send_json

if TYPE_CHECKING:
    from bastion.core.gateway import Gateway

logger = logging.getLogger("bastion.server")

DRAIN_GRACE_SECONDS: Final = 10.0
"""The default of `limits.shutdown_grace_seconds`: how long calls in flight may take once shutdown begins."""
_DRAIN_POLL_SECONDS: Final = 0.05
PROBE_PATHS: Final = frozenset({"/healthz", "/readyz"})
"""Answered from the first moment, while the upstreams may still be connecting."""


class Lifecycle:
    """Startup and shutdown state shared by the endpoints."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        """The upstreams connected or timed out: MCP and dashboard requests are served from then on. Set from
        the start: only a running lifespan clears it while it waits (an app driven without one never waits)."""
        self.started.set()
        self.draining = False
        """Shutdown has begun: refuse new work, let calls in flight finish."""
        self.long_lived: set[Outlet] = set()
        """Open streams that carry no call of their own (GET streams); they end when draining starts."""
        self._on_drain: list[Callable[[], None]] = []
        self.drain_started: float | None = None
        """Loop time when draining began (the grace period counts from the signal, not from uvicorn's wait)."""

    def on_drain(self, hook: Callable[[], None]) -> None:
        self._on_drain.append(hook)

    def start_drain(self) -> None:
        """Begin shutting down (idempotent)."""
        if self.draining:
            return
        self.draining = True
        self.drain_started = asyncio.get_running_loop().time()
        logger.info("shutting down: draining calls in flight")
        for outlet in list(self.long_lived):
            outlet.finish()
        for hook in self._on_drain:
            hook()


def _chain_exit_signals(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback` on the loop when SIGTERM/SIGINT arrives, then whatever handled them before (uvicorn).

    Uvicorn tells the app nothing before it waits for open connections to finish, so without this a client
    holding a GET stream would keep every shutdown waiting for uvicorn's whole grace period.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    installed: dict[int, Any] = {}

    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue  # nobody (uvicorn) handles it: leave the default behaviour alone

        def handler(signum: int, frame: FrameType | None, _previous: Any = previous) -> None:
            loop.call_soon_threadsafe(callback)
            _previous(signum, frame)

        signal.signal(sig, handler)
        installed[sig] = (previous, handler)

    def restore() -> None:
        for sig, (previous, handler) in installed.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)

    return restore


async def _settle(gateway: Gateway, deadline: float) -> None:
    """Wait (until loop time `deadline` at most) until no upstream call made for a client is in flight."""
    loop = asyncio.get_running_loop()

    # Polled: upstream connections publish no "idle" event, and this runs once, at shutdown.
    def busy() -> bool:
        conns = [*gateway.upstreams.values(), *gateway.pool.connections()]
        return any(c.describe()["inFlight"] for c in conns)

    while loop.time() < deadline and busy():  # noqa: ASYNC110
        await asyncio.sleep(_DRAIN_POLL_SECONDS)


class _Router:
    """Exact-path dispatch for the hot endpoints; anything else goes to the Starlette fallback."""

    __slots__ = ("_fallback", "_paths", "_started")

    def __init__(self, paths: dict[str, ASGIApp], fallback: ASGIApp, started: asyncio.Event) -> None:
        self._paths = paths
        self._fallback = fallback
        self._started = started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if scope["type"] == "http" and path not in PROBE_PATHS and not self._started.is_set():
            await self._started.wait()  # bounded: the startup wait ends at the upstreams' connect timeout
        if scope["type"] == "http" and (endpoint := self._paths.get(path)) is not None:  # type: ignore[arg-type]
            await endpoint(scope, receive, send)
            return
        await self._fallback(scope, receive, send)


def create_app(
    gateway: Gateway,
    *,
    extra_routes: Sequence[BaseRoute] = (),
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
    listen_host: str | None = None,
    drain_grace_seconds: float | None = None,
    readiness_detail: Callable[[Scope], Awaitable[bool]] | None = None,
    ui_origins: Sequence[str] = (),
) -> ASGIApp:
    """Build Bastion's ASGI app around `gateway`.

    Args:
        gateway: The gateway; the app's lifespan starts it and closes it.
        extra_routes: More Starlette routes (`/metrics`, `/api`, `/ui`), served behind the same security layers.
        readiness_detail: Whether a `/readyz` request may see the per-upstream detail (None: everyone may);
            the others get `{"ready": bool}` only.
        wrap: Wraps the routed app (authentication, telemetry), inside the security layers.
        listen_host: The address the server listens on (default `listen.host`); it is an accepted `Host`.
        ui_origins: Origins the dashboard accepts (`ui.allowed_origins`; the server knows no dashboard).
        drain_grace_seconds: How long calls in flight may run once shutdown begins (default:
            `limits.shutdown_grace_seconds`).
    """
    config = gateway.config
    grace = config.limits.shutdown_grace_seconds if drain_grace_seconds is None else drain_grace_seconds
    lifecycle = Lifecycle()
    mcp = StreamableEndpoint(gateway, lifecycle)
    legacy = LegacySse(gateway, lifecycle)
    lifecycle.on_drain(legacy.drain)
    lifecycle.on_drain(mcp.end_listens)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        lifecycle.started.clear()
        await gateway.start(wait=False)
        waiting = asyncio.create_task(gateway.wait_upstreams(), name="bastion-startup")
        waiting.add_done_callback(lambda _t: lifecycle.started.set())
        restore = _chain_exit_signals(lifecycle.start_drain)
        try:
            yield
        finally:
            waiting.cancel()
            restore()
            lifecycle.start_drain()
            assert lifecycle.drain_started is not None
            await _settle(gateway, lifecycle.drain_started + grace)
            legacy.close_all()
            await gateway.aclose()

    async def healthz(scope: Scope, receive: Receive, send: Send) -> None:
        await send_json(send, 200, b'{"status":"ok"}')

    async def readyz(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in ("GET", "HEAD"):
            await send_empty(send, 405, [(b"allow", b"GET, HEAD")])
            return
        health = gateway.health()
        ready = bool(health.get("ready")) and lifecycle.started.is_set() and not lifecycle.draining
        # Anyone (a load balancer) learns whether to send traffic; only an admin learns upstream names and errors.
        if readiness_detail is not None and not await readiness_detail(scope):
            await send_json(send, 200 if ready else 503, orjson.dumps({"ready": ready}))
            return
        await send_json(send, 200 if ready else 503, orjson.dumps({**health, "draining": lifecycle.draining}))

    async def bastion_error(_request: Request, exc: Exception) -> Response:
        answer = http_error(exc)
        return Response(answer.body, status_code=answer.status, media_type="application/json")

    # Starlette answers an unhandled exception itself (then re-raises it to our catch-all, which logs it):
    # the `Exception` handler makes that answer the same generic JSON-RPC 500.
    fallback = Starlette(
        routes=list(extra_routes),
        lifespan=lifespan,
        exception_handlers={BastionError: bastion_error, Exception: bastion_error},
    )
    paths: dict[str, ASGIApp] = {
        "/mcp": mcp,
        "/mcp/": mcp,
        "/sse": legacy.stream,
        "/messages": legacy.message,
        "/messages/": legacy.message,
        "/healthz": healthz,
        "/readyz": readyz,
    }
    app: ASGIApp = _Router(paths, fallback, lifecycle.started)
    if wrap is not None:
        app = wrap(app)
    rejections = Rejections(gateway, "http")
    app = BodyLimitMiddleware(app, max_bytes=config.limits.max_body_bytes, rejections=rejections)
    app = HostOriginMiddleware(
        app,
        listen_host=listen_host or config.listen.host,
        allowed_hosts=config.listen.allowed_hosts,
        allowed_origins=config.listen.allowed_origins,
        ui_origins=ui_origins,
        rejections=rejections,
    )
    return CatchAllMiddleware(app, rejections=rejections)
