"""Pure ASGI middleware in front of every HTTP request: the catch-all, DNS-rebinding defence, the body limit.

Rules:
- `CatchAllMiddleware` is outermost: an exception nobody handled becomes a generic 500 JSON-RPC error (details go
  to the log only); a `BastionError` that escaped (an oversize streamed body) becomes its own status.
- `HostOriginMiddleware`: the `Host` must name this gateway (the listen address, loopback names with any port, or
  `listen.allowed_hosts`), else 421 (400 when missing). A present `Origin` must be loopback, same-origin or in
  `listen.allowed_origins`, else 403. On the dashboard and admin API (`/ui`, `/api`: cookie-authenticated), a
  cross-origin request is allowed only from `ui.allowed_origins` (none by default; loopback origins are not
  implied there), else 403. Cross-origin requests from an allowed origin get CORS headers, and their
  preflight is answered here, before authentication. `/healthz` and `/readyz` are exempt (probes send pod IPs).
- `BodyLimitMiddleware`: a declared `Content-Length` over `limits.max_body_bytes` is refused at once (413); a body
  without one is counted while it streams and refused the moment it passes the limit, never buffered whole.
- Every refusal is answered with a JSON-RPC error body, logged and emitted as a notice; the server carries on.
"""

from __future__ import annotations

import ipaddress
import logging
import urllib.parse
from collections.abc import Iterable
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.errors import BastionError, Forbidden, InternalError, InvalidRequest, PayloadTooLarge, http_error
from bastion.server.wire import Rejections, send_error

logger = logging.getLogger("bastion.server")

LOOPBACK_NAMES: Final = frozenset({"localhost", "127.0.0.1", "[::1]"})
EXEMPT_PATHS: Final = frozenset({"/healthz", "/readyz"})
"""Paths served whatever the Host or Origin (liveness and readiness probes; they reveal no secrets)."""
_HOST_CACHE_SIZE: Final = 256
"""Distinct Host values whose verdict is remembered (the cache stops growing, it is never evicted)."""
_CORS_METHODS: Final = b"GET, POST, DELETE"
_CORS_EXPOSE: Final = b"mcp-session-id, mcp-protocol-version"
_CORS_MAX_AGE: Final = b"600"


class CatchAllMiddleware:
    """The one outermost boundary: unexpected exceptions become a generic 500, never a traceback."""

    def __init__(self, app: ASGIApp, *, rejections: Rejections) -> None:
        self.app = app
        self._rejections = rejections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except BastionError as exc:
            if started:
                logger.warning("%s after the response started on %s", exc.reason, scope.get("path"))
            else:
                await self._rejections.reject(scope, send, exc)
        except Exception:  # the outermost boundary: log everything, tell the client nothing internal
            logger.exception("unhandled error serving %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await send_error(send, http_error(InternalError("internal error")))


def _split_host(value: str) -> tuple[str, str] | None:
    """`(name, port)` of a Host header value (port "" when absent; IPv6 names keep their brackets)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        if rest and (not rest.startswith(":") or not rest[1:].isdigit()):
            return None
        return name, rest[1:]
    name, sep, port = value.partition(":")
    if not name or (sep and not port.isdigit()):
        return None
    return name, port


def _host_name(host: str) -> str | None:
    """How a listen address appears in a Host header; None for wildcard addresses (they name no host)."""
    host = host.strip().strip("[]").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or None
    if address.is_unspecified:
        return None
    return f"[{host}]" if address.version == 6 else host


def _is_ui(path: str) -> bool:
    """The cookie-authenticated surface (`/ui`, `/api`), compared like the auth middleware compares paths."""
    first = path.lstrip("/").split("/", 1)[0].casefold()
    return first in ("ui", "api")


class HostOriginMiddleware:
    """DNS-rebinding defence: refuse requests whose Host or Origin does not belong here."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        listen_host: str,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
        ui_origins: Iterable[str] = (),
        rejections: Rejections,
    ) -> None:
        self.app = app
        self._rejections = rejections
        self._any_port = set(LOOPBACK_NAMES)
        self._exact: set[str] = set()
        self._any_host = False
        if (own := _host_name(listen_host)) is not None:
            self._any_port.add(own)
        for entry in allowed_hosts:
            entry = entry.strip().lower()
            if entry == "*":
                self._any_host = True
            elif entry.endswith(":*"):
                self._any_port.add(entry[:-2])
            elif (parts := _split_host(entry)) is not None:
                if parts[1]:
                    self._exact.add(entry)
                else:
                    self._any_port.add(parts[0])
        self._origins = {o.strip().lower().rstrip("/") for o in allowed_origins}
        self._seen: dict[str, bool] = {}
        self._any_origin = "*" in self._origins
        self._ui_origins = {o.strip().lower().rstrip("/") for o in ui_origins}

    def _host_ok(self, host: str) -> bool:
        known = self._seen.get(host)
        if known is not None:
            return known
        if self._any_host:
            return True
        parts = _split_host(host)
        verdict = parts is not None and (parts[0] in self._any_port or host.strip().lower() in self._exact)
        if len(self._seen) < _HOST_CACHE_SIZE:  # legitimate clients send a handful of values
            self._seen[host] = verdict
        return verdict

    def _origin_verdict(self, origin: str, host: str) -> tuple[bool, bool]:
        """(allowed, cross-origin) for a present Origin header."""
        value = origin.strip().lower().rstrip("/")
        try:
            parts = urllib.parse.urlsplit(value)
            hostname = parts.hostname
        except ValueError:
            return False, True
        if parts.scheme not in ("http", "https") or not hostname:
            return self._any_origin, True  # "null" and other opaque origins
        same = parts.netloc == host.strip().lower()
        if same:
            return True, False
        name = f"[{hostname}]" if ":" in hostname else hostname
        return (name in LOOPBACK_NAMES or value in self._origins or self._any_origin), True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        host: str | None = None
        origin: str | None = None
        for key, value in scope["headers"]:
            if key == b"host":
                host = value.decode("latin-1")
            elif key == b"origin":
                origin = value.decode("latin-1")
        if host is None:
            await self._rejections.reject(scope, send, InvalidRequest("Bad Request: missing Host header"))
            return
        if not self._host_ok(host):
            await self._rejections.reject(
                scope,
                send,
                InvalidRequest("Misdirected Request: invalid Host header"),
                status=421,
                detail={"host": host[:100]},
            )
            return
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed, cross = self._origin_verdict(origin, host)
        if cross and _is_ui(scope["path"]):
            allowed = origin.strip().lower().rstrip("/") in self._ui_origins
        if not allowed:
            await self._rejections.reject(
                scope, send, Forbidden("Forbidden: invalid Origin header"), detail={"origin": origin[:100]}
            )
            return
        if not cross:
            await self.app(scope, receive, send)
            return
        await self._cross_origin(scope, receive, send, origin.encode("latin-1"))

    async def _cross_origin(self, scope: Scope, receive: Receive, send: Send, origin: bytes) -> None:
        cors = [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"origin"),
        ]
        requested = next((v for k, v in scope["headers"] if k == b"access-control-request-method"), None)
        if scope["method"] == "OPTIONS" and requested is not None:
            asked = next((v for k, v in scope["headers"] if k == b"access-control-request-headers"), b"")
            cors += [
                (b"access-control-allow-methods", _CORS_METHODS),
                (b"access-control-allow-headers", asked),
                (b"access-control-max-age", _CORS_MAX_AGE),
                (b"content-length", b"0"),
            ]
            await send({"type": "http.response.start", "status": 204, "headers": cors})
            await send({"type": "http.response.body", "body": b""})
            return
        cors.append((b"access-control-expose-headers", _CORS_EXPOSE))

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *cors]}
            await send(message)

        await self.app(scope, receive, with_cors)


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes`, declared or streamed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, rejections: Rejections) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._rejections = rejections

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None:
            if not declared.isdigit():
                await self._rejections.reject(
                    scope, send, InvalidRequest("Bad Request: invalid Content-Length")
                )
                return
            if int(declared) > self.max_bytes:
                await self._rejections.reject(
                    scope, send, self._too_large(), detail={"declared": int(declared)}
                )
                return
            # The server reads exactly Content-Length bytes: nothing more to count.
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise self._too_large()
            return message

        await self.app(scope, counted, send)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge("Payload Too Large: request body too large", data={"maxBytes": self.max_bytes})
