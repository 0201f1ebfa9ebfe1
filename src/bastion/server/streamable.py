"""`/mcp`: Streamable HTTP for both protocol eras on one endpoint, and the handshake era's sessions.

Rules:
- Era: a POST whose `MCP-Protocol-Version` is a 2026-07-28 revision, or whose params carry the `_meta` envelope, is
  a stateless request (`bastion.server.modern`). Everything else is the handshake era (2024-11-05..2025-11-25):
  a missing `MCP-Protocol-Version` means 2025-03-26, an unsupported one is a 400.
- Handshake sessions: `initialize` without `Mcp-Session-Id` opens one; after that the header is required (400
  without it) and an unknown, terminated or foreign session is a 404 (one answer for all three: no oracle).
  A sealed id from another replica is restored here before answering 404.
- A session is bound to the credential that opened it (API key id; JWT issuer, subject and token digest): its id
  presented with any other credential, of the same principal or not, is refused exactly like an unknown id,
  logged, and emitted as an `AUTH_FAILURE` notice. Every request re-authenticates, and the roles in force are
  always those of the credential on that request.
- Notifications and responses are accepted with 202; requests are answered by `Reply` (JSON or SSE).
- JSON-RPC batches only on a session that negotiated 2025-03-26; each element goes through the session like a lone
  message (the same pipeline), and the reply is an array.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import TYPE_CHECKING, Any, Final

from starlette.types import Receive, Scope, Send

from bastion.errors import (
    BastionError,
    InvalidRequest,
    SessionNotFound,
    UnsupportedVersion,
    UpstreamUnavailable,
    error_response,
    http_error,
)
from bastion.pipeline.notice import NoticeKind
from bastion.protocol import jsonrpc, versions
from bastion.server.cancels import cancel_sessionless
from bastion.server.channel import STANDALONE, HttpChannel, parse_event_id
from bastion.server.modern import ModernEndpoint, is_modern_request
from bastion.server.reply import Mode, Reply, send_sse
from bastion.server.wire import (
    ClientGone,
    Rejections,
    RequestHeaders,
    parse,
    principal_of,
    read_body,
    remote_of,
    send_empty,
    send_error,
    send_json,
)
from bastion.types import binding_of

if TYPE_CHECKING:
    from bastion.core.gateway import Gateway
    from bastion.core.session import DownstreamSession
    from bastion.server.app import Lifecycle
    from bastion.types import Principal

logger = logging.getLogger("bastion.server")

TRANSPORT: Final = "streamable-http"
TOMBSTONES: Final = 10_000
"""Recently deleted session ids remembered per replica, so a sealed id cannot be restored after DELETE."""
PRIMING_SINCE: Final = "2025-11-25"
"""Clients of this revision and later expect (and resume from) a priming event with an empty `data`."""
_ALLOW: Final = [(b"allow", b"GET, POST, DELETE")]


class StreamableEndpoint:
    """The ASGI endpoint at `/mcp`."""

    def __init__(self, gateway: Gateway, lifecycle: Lifecycle) -> None:
        self._gateway = gateway
        self._lifecycle = lifecycle
        self._limits = gateway.config.limits
        self._channels: dict[DownstreamSession, HttpChannel] = {}
        self._tombstones: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._rejections = Rejections(gateway, TRANSPORT)
        self._modern = ModernEndpoint(gateway, lifecycle, self._rejections)
        gateway.session_listeners.append(self._on_session_event)

    def _on_session_event(self, event: str, session: DownstreamSession) -> None:
        if event == "end" and (channel := self._channels.pop(session, None)) is not None:
            channel.close()

    def end_listens(self) -> None:
        """Shutdown: end every 2026-07-28 `subscriptions/listen` stream gracefully."""
        self._modern.end_listens()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = RequestHeaders(scope)
        method = scope["method"]
        try:
            if method == "POST":
                await self._post(scope, receive, send, headers)
                return
            if method not in ("GET", "DELETE"):
                await self._rejections.reject(scope, send, _not_allowed(), status=405, headers=_ALLOW)
                return
            version = headers.protocol_version
            if version is not None and versions.is_modern(version):
                # 2026-07-28 has no GET stream and no session to delete.
                await self._rejections.reject(
                    scope, send, _not_allowed(), status=405, headers=[(b"allow", b"POST")]
                )
                return
            if version is not None and version not in versions.HANDSHAKE_VERSIONS:
                raise _unsupported(version)
            if method == "GET":
                await self._get(scope, receive, send, headers)
            else:
                await self._delete(scope, send, headers)
        except ClientGone:
            return
        except BastionError as exc:
            await self._rejections.reject(scope, send, exc)

    # -- POST --------------------------------------------------------------------------------------------------

    async def _post(self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders) -> None:
        if not headers.is_json():
            await self._rejections.reject(
                scope, send, InvalidRequest("Content-Type must be application/json"), status=415
            )
            return
        if not (headers.accepts("application/json") or headers.accepts("text/event-stream")):
            await self._rejections.reject(
                scope,
                send,
                InvalidRequest("Accept must allow application/json or text/event-stream"),
                status=406,
            )
            return
        message = parse(await read_body(receive, self._limits.max_body_bytes), self._limits.max_depth)
        if is_modern_request(headers, message):
            await self._modern.serve(scope, receive, send, headers, message)
            return
        version = headers.protocol_version
        if version is not None and version not in versions.HANDSHAKE_VERSIONS:
            raise _unsupported(version)
        if isinstance(message, list):
            await self._batch(scope, receive, send, headers, message)
            return
        kind = jsonrpc.classify(message)
        principal = principal_of(scope)
        if headers.session_id is None:
            if kind is jsonrpc.Kind.REQUEST and message["method"] == "initialize":
                await self._initialize(scope, receive, send, message, principal)
                return
            if (
                kind is jsonrpc.Kind.NOTIFICATION
                and message["method"] == "notifications/cancelled"
                and await cancel_sessionless(self._gateway, self._modern.in_flight, principal.name, message)
            ):
                await send_empty(send, 202)  # a bridge forwarded the cancel without the session: honour it
                return
            raise InvalidRequest("Bad Request: Mcp-Session-Id header is required")
        session, channel = await self._lookup(scope, headers.session_id, principal)
        if kind is not jsonrpc.Kind.REQUEST:
            await session.handle(message)
            await send_empty(send, 202)
            return
        if self._lifecycle.draining:
            await self._rejections.reject(scope, send, _draining(), request_id=message["id"])
            return
        request_id = message["id"]
        if channel.in_flight(request_id):
            await self._rejections.reject(
                scope, send, InvalidRequest("request id already in flight"), request_id=request_id
            )
            return
        reply = channel.open_reply([request_id])
        await session.handle(message)
        await self._answer(scope, receive, send, session, channel, reply, [])

    async def _initialize(
        self, scope: Scope, receive: Receive, send: Send, message: dict[str, Any], principal: Principal
    ) -> None:
        if self._lifecycle.draining:
            await self._rejections.reject(scope, send, _draining(), request_id=message["id"])
            return
        channel = HttpChannel(owner=binding_of(principal), buffer_size=self._limits.event_buffer)
        session = await self._gateway.open_session(
            transport=TRANSPORT, outbound=channel, principal=principal, remote=remote_of(scope)
        )
        self._channels[session] = channel
        channel.name = f"session {session.session_id[:8]}"
        reply = channel.open_reply([message["id"]])
        await session.handle(message)
        mode = await reply.decided()
        if not session.info.protocol_version or mode is Mode.PENDING:
            # The handshake failed: no session comes out of it.
            await session.aclose()
            await self._answer(scope, receive, send, session, channel, reply, [])
            return
        # Read only now: with a cluster secret, the handshake replaced the id with a sealed one.
        session_header = [(b"mcp-session-id", session.session_id.encode())]
        await self._answer(scope, receive, send, session, channel, reply, session_header)

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        session: DownstreamSession,
        channel: HttpChannel,
        reply: Reply,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        mode = await reply.decided()
        if mode is Mode.JSON:
            await send_json(send, reply.status, reply.json_body(), headers)
            return
        outlet = reply.outlet
        if mode is Mode.PENDING or outlet is None:
            await send_error(send, http_error(SessionNotFound("Session not found")))
            return
        priming = b""
        if session.info.protocol_version >= PRIMING_SINCE:
            priming = f"id: {reply.number}-{channel.last_seq}\ndata: \n\n".encode()
        await send_sse(send, receive, outlet, headers=headers, first=priming)

    async def _batch(
        self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders, batch: list[Any]
    ) -> None:
        principal = principal_of(scope)
        if headers.session_id is None:
            raise InvalidRequest("JSON-RPC batches are accepted only on a 2025-03-26 session")
        session, channel = await self._lookup(scope, headers.session_id, principal)
        if not versions.supports_batching(session.info.protocol_version):
            raise InvalidRequest("JSON-RPC batches are accepted only on a 2025-03-26 session")
        if not batch:
            raise InvalidRequest("empty batch")
        errors: list[bytes] = []
        requests: list[dict[str, Any]] = []
        others: list[dict[str, Any]] = []
        seen: set[Any] = set()
        for item in batch:
            try:
                kind = jsonrpc.classify(item)
            except BastionError as exc:
                errors.append(jsonrpc.dumps(error_response(None, exc)))
                await self._rejections.notice(scope, exc, 200, detail={"batch": True})
                continue
            if kind is not jsonrpc.Kind.REQUEST:
                others.append(item)
            elif item["id"] in seen or channel.in_flight(item["id"]):
                errors.append(
                    jsonrpc.dumps(error_response(item["id"], InvalidRequest("request id already in flight")))
                )
            elif self._lifecycle.draining:
                errors.append(jsonrpc.dumps(error_response(item["id"], _draining())))
            else:
                seen.add(item["id"])
                requests.append(item)
        for item in others:
            await session.handle(item)
        if not requests and not errors:
            await send_empty(send, 202)
            return
        if not requests:
            await send_json(send, 400, b"[" + b",".join(errors) + b"]")
            return
        reply = channel.open_reply([r["id"] for r in requests], batch=True)
        reply.parts.extend(errors)
        for item in requests:
            await session.handle(item)
        await self._answer(scope, receive, send, session, channel, reply, [])

    # -- GET and DELETE ----------------------------------------------------------------------------------------

    async def _get(self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders) -> None:
        if headers.session_id is None:
            raise InvalidRequest("Bad Request: Mcp-Session-Id header is required")
        if not headers.accepts("text/event-stream"):
            await self._rejections.reject(
                scope, send, InvalidRequest("Accept must allow text/event-stream"), status=406
            )
            return
        session, channel = await self._lookup(scope, headers.session_id, principal_of(scope))
        if headers.last_event_id is not None:
            position = parse_event_id(headers.last_event_id)
            if position is None:
                raise InvalidRequest("Last-Event-ID is not an event id of this session")
            stream, after = position
            if stream == STANDALONE:
                outlet = channel.attach_standalone(after)
            elif (resumed := channel.resume(stream, after)) is not None:
                outlet = resumed
            else:
                raise InvalidRequest("the stream named by Last-Event-ID cannot be resumed")
        elif self._lifecycle.draining:
            raise _draining()
        elif channel.standalone_busy():
            await self._rejections.reject(
                scope, send, InvalidRequest("a GET stream is already open for this session"), status=409
            )
            return
        else:
            outlet = channel.attach_standalone(None)
        self._lifecycle.long_lived.add(outlet)
        try:
            # An attached stream is a live client: keep the idle reaper off its session.
            await send_sse(send, receive, outlet, on_keepalive=lambda: self._touch(session))
        finally:
            self._lifecycle.long_lived.discard(outlet)
            channel.detach(outlet)

    async def _delete(self, scope: Scope, send: Send, headers: RequestHeaders) -> None:
        if headers.session_id is None:
            raise InvalidRequest("Bad Request: Mcp-Session-Id header is required")
        session, _channel = await self._lookup(scope, headers.session_id, principal_of(scope))
        self._bury(headers.session_id)
        self._bury(session.session_id)
        await session.aclose()
        if (revocations := self._gateway.revocations) is not None:
            # Other replicas must not restore this sealed id again, and must close their copies of it.
            await revocations.revoke(session.session_id, session.info.principal.name)
        await send_empty(send, 204)

    # -- sessions ----------------------------------------------------------------------------------------------

    async def _lookup(
        self, scope: Scope, session_id: str, principal: Principal
    ) -> tuple[DownstreamSession, HttpChannel]:
        """The session and channel for an id, for this principal; raises `SessionNotFound` otherwise."""
        session = self._gateway.get_session(session_id)
        channel = self._channels.get(session) if session is not None else None
        if session is None and self._gateway.sealer is not None and session_id not in self._tombstones:
            channel = HttpChannel(owner=binding_of(principal), buffer_size=self._limits.event_buffer)
            session = await self._gateway.restore_session(
                session_id, transport=TRANSPORT, outbound=channel, principal=principal
            )
            if session is not None:
                channel.name = f"session {session_id[:8]}"
                self._channels[session] = channel
        if session is None or channel is None:
            raise await self._not_found(session_id, principal)
        if channel.owner != binding_of(principal):
            await self._rejections.emit(
                scope,
                NoticeKind.AUTH_FAILURE,
                {"reason": "session_principal_mismatch", "status": 404, "session": session_id[:8]},
            )
            logger.warning(
                "session %s presented by principal %r with a credential other than the one that opened it",
                session_id[:8],
                principal.name,
            )
            raise SessionNotFound("Session not found")
        session.info.principal = principal  # the same credential, re-authenticated: its roles as of now
        self._touch(session)
        return session, channel

    async def _not_found(self, session_id: str, principal: Principal) -> SessionNotFound:
        """The 404, with the registry's reason when the caller owns the session (anyone else learns nothing)."""
        revocations = self._gateway.revocations
        if revocations is None:
            return SessionNotFound("Session not found")
        try:
            why = await revocations.explain(session_id, principal.name)
        except Exception:  # noqa: BLE001 - store boundary: the registry only explains, the answer is a 404 either way
            logger.warning("session registry unavailable while explaining a missing session")
            why = None
        if why is None:
            return SessionNotFound("Session not found")
        logger.info("session %s not found here: %s", session_id[:12], why["session"])
        return SessionNotFound(f"Session not found ({why['session']}): initialize a new session", data=why)

    def _touch(self, session: DownstreamSession) -> None:
        session.last_active = time.monotonic()

    def _bury(self, session_id: str) -> None:
        self._tombstones[session_id] = None
        while len(self._tombstones) > TOMBSTONES:
            self._tombstones.popitem(last=False)


def _unsupported(version: str) -> UnsupportedVersion:
    return UnsupportedVersion(
        "Bad Request: Unsupported protocol version",
        data={"supported": list(versions.ALL_VERSIONS), "requested": version[:64]},
    )


def _not_allowed() -> BastionError:
    return InvalidRequest("Method Not Allowed")


def _draining() -> BastionError:
    return UpstreamUnavailable("the gateway is shutting down; retry on another replica")
