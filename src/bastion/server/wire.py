"""ASGI plumbing shared by the MCP endpoints: the headers they read, bounded body reads, JSON replies, rejections.

Rules:
- Headers are read in one pass over the raw list; routing headers given twice are remembered (never trusted).
- A body is read at most `limit` bytes far; the rest of an oversize body is never buffered.
- Every rejected input is answered with a JSON-RPC error body and the error's HTTP status, logged, and emitted as
  a `PROTOCOL_ERROR` notice; nothing about the input beyond its reason and size reaches the log.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from starlette.types import Receive, Scope, Send

from bastion.errors import BastionError, HttpAnswer, InvalidRequest, PayloadTooLarge, http_error
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.protocol import jsonrpc
from bastion.types import ANONYMOUS, Principal

if TYPE_CHECKING:
    from bastion.core.gateway import Gateway

logger = logging.getLogger("bastion.server")

BODY_TIMEOUT_SECONDS: Final = 30.0
"""Seconds a client may take to send its whole request body before it is refused (slow-body clients)."""
JSON_HEADERS: Final = ((b"content-type", b"application/json"),)
_WANTED: Final = frozenset(
    {
        b"accept",
        b"content-type",
        b"last-event-id",
        b"mcp-method",
        b"mcp-name",
        b"mcp-protocol-version",
        b"mcp-session-id",
    }
)
_ROUTING: Final = frozenset({b"mcp-method", b"mcp-name", b"mcp-protocol-version", b"mcp-session-id"})


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


class RequestHeaders:
    """The request headers the MCP endpoints look at, read in one pass."""

    __slots__ = (
        "accept",
        "content_type",
        "duplicated",
        "last_event_id",
        "mcp_method",
        "mcp_name",
        "protocol_version",
        "session_id",
    )

    def __init__(self, scope: Scope) -> None:
        values: dict[bytes, str] = {}
        duplicated: bytes | None = None
        for key, value in scope["headers"]:
            if key in _WANTED:
                if key in values:
                    if key in _ROUTING:
                        duplicated = key
                    continue
                values[key] = value.decode("latin-1").strip(" \t")  # OWS is not part of a value
        self.accept = values.get(b"accept")
        self.content_type = values.get(b"content-type")
        self.last_event_id = values.get(b"last-event-id")
        self.mcp_method = values.get(b"mcp-method")
        self.mcp_name = values.get(b"mcp-name")
        self.protocol_version = values.get(b"mcp-protocol-version")
        self.session_id = values.get(b"mcp-session-id")
        self.duplicated = duplicated.decode() if duplicated is not None else None
        """A routing header that appeared more than once (first and last readers would disagree)."""

    def accepts(self, media: str) -> bool:
        """True when `Accept` is absent or admits `media` (wildcards included)."""
        if self.accept is None:
            return True
        kind = media.split("/", 1)[0]
        for part in self.accept.split(","):
            value = part.split(";", 1)[0].strip().lower()
            if value in (media, "*/*", f"{kind}/*"):
                return True
        return False

    def is_json(self) -> bool:
        """True when the body is declared as JSON (`application/json`, any parameters)."""
        return (
            self.content_type is not None
            and self.content_type.split(";", 1)[0].strip().lower() == "application/json"
        )


def principal_of(scope: Scope) -> Principal:
    """The authenticated caller (put there by `AuthMiddleware`), or `ANONYMOUS` when auth is off."""
    state = scope.get("state")
    principal = state.get("principal") if isinstance(state, dict) else None
    return principal if isinstance(principal, Principal) else ANONYMOUS


def remote_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing to read past `limit` bytes or to wait longer than `BODY_TIMEOUT_SECONDS`.

    Raises:
        PayloadTooLarge: the body is longer than `limit`.
        InvalidRequest: the body did not arrive in time (uvicorn has no body timeout of its own).
        ClientGone: the client disconnected first.
    """
    task = asyncio.current_task()
    assert task is not None
    cancelling = task.cancelling()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    # A bare timer, not asyncio.timeout(): half the cost on the per-request path, same uncancel discipline.
    timer = asyncio.get_running_loop().call_later(BODY_TIMEOUT_SECONDS, expire)
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            body: bytes = message.get("body", b"")
            if body:
                size += len(body)
                if size > limit:
                    raise PayloadTooLarge("request body too large", data={"maxBytes": limit})
                chunks.append(body)
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError:
        if expired and task.uncancel() <= cancelling:
            raise InvalidRequest(
                "request body not received in time", data={"seconds": BODY_TIMEOUT_SECONDS}
            ) from None
        raise
    finally:
        timer.cancel()
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


def parse(body: bytes, max_depth: int) -> Any:
    """Parse a body once (orjson); raises `ParseError` (bad JSON or UTF-8) or `PayloadTooLarge` (too deep)."""
    # Nesting needs an opening bracket per level: with no more brackets than levels allowed (counted in C),
    # the walk over the parsed value can be skipped.
    if body.count(b"{") + body.count(b"[") <= max_depth:
        max_depth = 0
    return jsonrpc.loads(body, max_depth=max_depth)


async def send_json(
    send: Send,
    status: int,
    body: bytes,
    headers: tuple[tuple[bytes, bytes], ...] | list[tuple[bytes, bytes]] = (),
) -> None:
    """A complete `application/json` response."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_empty(send: Send, status: int, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """A response without a body (202 Accepted, 204, 405 with `Allow`)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-length", b"0"), *(headers or ())],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def send_error(send: Send, answer: HttpAnswer) -> None:
    """Send an `errors.http_error` answer (the one place an error becomes an HTTP response)."""
    await send_json(send, answer.status, answer.body, answer.headers)


class Rejections:
    """Answers bad input: one JSON-RPC error reply, one log line, one `PROTOCOL_ERROR` notice."""

    def __init__(self, gateway: Gateway, transport: str) -> None:
        self._gateway = gateway
        self._transport = transport

    async def reject(
        self,
        scope: Scope,
        send: Send,
        exc: BastionError,
        *,
        status: int | None = None,
        request_id: Any = None,
        headers: list[tuple[bytes, bytes]] | None = None,
        kind: NoticeKind = NoticeKind.PROTOCOL_ERROR,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Refuse one HTTP request with `exc` (its own HTTP status unless `status` is given)."""
        answer = http_error(exc, request_id=request_id, status=status, headers=headers or ())
        await send_error(send, answer)
        await self.notice(scope, exc, answer.status, kind=kind, detail=detail)

    async def notice(
        self,
        scope: Scope,
        exc: BastionError,
        status: int,
        *,
        kind: NoticeKind = NoticeKind.PROTOCOL_ERROR,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Log and emit a refused input without answering it (the caller already did)."""
        logger.info(
            "%s %s refused with %d: %s (client %s)",
            scope.get("method", ""),
            scope.get("path", ""),
            status,
            exc.reason,
            remote_of(scope),
        )
        await self.emit(scope, kind, {"reason": str(exc.reason), "status": status, **(detail or {})})

    async def emit(self, scope: Scope, kind: NoticeKind, detail: dict[str, Any]) -> None:
        """Emit a notice about this request (who, from where, which path) without logging it."""
        principal = principal_of(scope)
        await self._gateway.emit(
            Notice(
                kind=kind,
                severity="warning",
                principal=principal.name,
                roles=tuple(sorted(principal.roles)),
                transport=self._transport,
                remote=remote_of(scope),
                detail={
                    "path": str(scope.get("path", ""))[:200],
                    "method": str(scope.get("method", "")),
                    **detail,
                },
            )
        )
