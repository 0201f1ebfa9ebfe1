"""The 2024-11-05 HTTP+SSE transport: `GET /sse` holds the session's only server->client stream, and the client
POSTs each message to `/messages?sessionId=...`.

Rules:
- The first event is `endpoint`, naming the POST URI. Every server message follows as a `message` event.
- The `sessionId` in that URI is a random routing token of this replica (the stream lives here), bound to the
  credential that opened the stream: the same token with any other credential is a 404, like an unknown one.
- A POST is accepted with 202 once the session has taken the message; answers travel on the stream.
- Batches are refused (-32600): this transport predates JSON-RPC batching in MCP.
- The session ends when the stream does (client gone, dropped as too slow, or shutdown once idle).
"""

from __future__ import annotations

import logging
import secrets
import urllib.parse
from typing import TYPE_CHECKING, Final

import orjson
from starlette.types import Receive, Scope, Send

from bastion.errors import BastionError, InvalidRequest, SessionNotFound, UpstreamUnavailable
from bastion.pipeline.notice import NoticeKind
from bastion.protocol import jsonrpc
from bastion.server.reply import Outlet, frame, send_sse
from bastion.server.wire import (
    ClientGone,
    Rejections,
    parse,
    principal_of,
    read_body,
    remote_of,
    send_empty,
)
from bastion.types import JsonDict, RequestId, binding_of

if TYPE_CHECKING:
    from bastion.core.gateway import Gateway
    from bastion.core.session import DownstreamSession
    from bastion.server.app import Lifecycle

logger = logging.getLogger("bastion.server")

TRANSPORT: Final = "sse"


class _LegacyChannel:
    """`Outbound` of a legacy session: one SSE stream carries everything; tracks calls still unanswered."""

    __slots__ = ("_lifecycle", "in_flight", "outlet", "owner")

    def __init__(self, owner: str, lifecycle: Lifecycle) -> None:
        self.owner = owner
        self.outlet = Outlet("legacy SSE stream")
        self.in_flight: set[RequestId] = set()
        self._lifecycle = lifecycle

    async def send(self, message: JsonDict, related: RequestId | None) -> None:
        self.outlet.push(frame(orjson.dumps(message)))
        if "method" not in message:
            self.in_flight.discard(message.get("id"))
            if self._lifecycle.draining and not self.in_flight:
                self.outlet.finish()  # shutting down: the last answer is out, end the stream

    def idle(self) -> bool:
        return not self.in_flight


class LegacySse:
    """Both endpoints of the legacy transport (`/sse` and `/messages`)."""

    def __init__(self, gateway: Gateway, lifecycle: Lifecycle) -> None:
        self._gateway = gateway
        self._lifecycle = lifecycle
        self._limits = gateway.config.limits
        self._streams: dict[str, tuple[DownstreamSession, _LegacyChannel]] = {}
        self._rejections = Rejections(gateway, TRANSPORT)

    def drain(self) -> None:
        """Shutdown: end every stream with no call in flight (the rest end as their calls finish)."""
        for _session, channel in self._streams.values():
            if channel.idle():
                channel.outlet.finish()

    def close_all(self) -> None:
        """Shutdown grace is over: end every stream."""
        for _session, channel in self._streams.values():
            channel.outlet.finish()

    async def stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`GET /sse`."""
        if scope["method"] != "GET":
            await self._rejections.reject(
                scope, send, InvalidRequest("Method Not Allowed"), status=405, headers=[(b"allow", b"GET")]
            )
            return
        if self._lifecycle.draining:
            await self._rejections.reject(scope, send, UpstreamUnavailable("the gateway is shutting down"))
            return
        principal = principal_of(scope)
        channel = _LegacyChannel(binding_of(principal), self._lifecycle)
        try:
            session = await self._gateway.open_session(
                transport=TRANSPORT, outbound=channel, principal=principal, remote=remote_of(scope)
            )
        except BastionError as exc:
            await self._rejections.reject(scope, send, exc)
            return
        token = secrets.token_urlsafe(24)
        self._streams[token] = (session, channel)
        endpoint = f"{scope.get('root_path', '')}/messages?sessionId={token}".encode()
        try:
            await send_sse(send, receive, channel.outlet, first=frame(endpoint, event=b"endpoint"))
        finally:
            del self._streams[token]
            await session.aclose()

    async def message(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`POST /messages?sessionId=...`."""
        if scope["method"] != "POST":
            await self._rejections.reject(
                scope, send, InvalidRequest("Method Not Allowed"), status=405, headers=[(b"allow", b"POST")]
            )
            return
        try:
            await self._message(scope, receive, send)
        except ClientGone:
            return
        except BastionError as exc:
            await self._rejections.reject(scope, send, exc)

    async def _message(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        token = (query.get("sessionId") or query.get("session_id") or [""])[0]
        entry = self._streams.get(token)
        if entry is None:
            raise SessionNotFound("Session not found")
        session, channel = entry
        principal = principal_of(scope)
        if channel.owner != binding_of(principal):
            await self._rejections.emit(
                scope,
                NoticeKind.AUTH_FAILURE,
                {"reason": "session_principal_mismatch", "status": 404, "session": token[:8]},
            )
            logger.warning("legacy SSE session %s presented with another credential", token[:8])
            raise SessionNotFound("Session not found")
        session.info.principal = principal  # the same credential, re-authenticated: its roles as of now
        message = parse(await read_body(receive, self._limits.max_body_bytes), self._limits.max_depth)
        if isinstance(message, list):
            raise InvalidRequest("JSON-RPC batches are not accepted on the HTTP+SSE transport")
        kind = jsonrpc.classify(message)
        if kind is jsonrpc.Kind.REQUEST:
            if self._lifecycle.draining:
                raise UpstreamUnavailable("the gateway is shutting down")
            channel.in_flight.add(message["id"])
        await session.handle(message)
        await send_empty(send, 202)
