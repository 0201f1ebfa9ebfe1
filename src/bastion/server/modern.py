"""2026-07-28 over Streamable HTTP: one self-contained request per POST, served by a stateless session.

Rules (`basic/transports/streamable-http.mdx` of 2026-07-28):
- POST only; no `Mcp-Session-Id` is read or minted, `Last-Event-ID` is ignored.
- The routing headers must mirror the body: `MCP-Protocol-Version` = `_meta` protocol version, `Mcp-Method` =
  method, `Mcp-Name` = `params.name` / `params.uri` (`=?base64?...?=` decoded). Missing, repeated or different
  -> 400 with -32020. A missing envelope -> 400 -32602. A version we do not speak -> 400 -32022 naming ours.
- The reply is JSON or SSE scoped to the request (its progress and log messages, then its response). Closing
  the response is the cancellation: the session's call is cancelled, which cancels the upstream call.
- `subscriptions/listen` is a long-lived SSE response: the acknowledgement first, then only the notification
  kinds the client asked for (each stamped with the subscription id), and a `complete` result when Bastion ends it.
- Notifications need the same `MCP-Protocol-Version` header as requests (missing -> 400 -32020, not ours -> 400
  -32022) and are acknowledged with 202. A `notifications/cancelled` naming a call of the same principal in flight
  cancels it (and so the upstream call), as closing its stream would (`cancels.py`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from typing import TYPE_CHECKING, Any, Final

import orjson
from starlette.types import Receive, Scope, Send

from bastion.errors import (
    BastionError,
    HeaderMismatch,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    ParseError,
    UnsupportedVersion,
    UpstreamUnavailable,
)
from bastion.protocol import jsonrpc, versions
from bastion.protocol.subscriptions import Listen
from bastion.server.cancels import InFlight, cancel_sessionless
from bastion.server.reply import Mode, Outlet, Reply, frame, send_sse
from bastion.server.wire import (
    Rejections,
    RequestHeaders,
    principal_of,
    remote_of,
    send_empty,
    send_json,
)
from bastion.types import JsonDict, RequestId

if TYPE_CHECKING:
    from bastion.core.gateway import Gateway
    from bastion.core.session import DownstreamSession
    from bastion.server.app import Lifecycle

TRANSPORT: Final = "streamable-http"
NAME_PARAMS: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
"""Methods whose `Mcp-Name` header mirrors a params member, and which member."""
ERROR_STATUS: Final = {
    ParseError.jsonrpc_code: 400,
    InvalidRequest.jsonrpc_code: 400,
    InvalidParams.jsonrpc_code: 400,
    HeaderMismatch.jsonrpc_code: 400,
    -32021: 400,  # in the transport's table, but no error Bastion raises carries it
    UnsupportedVersion.jsonrpc_code: 400,
    MethodNotFound.jsonrpc_code: 404,
}
"""HTTP status of a JSON reply carrying these JSON-RPC error codes (the 2026-07-28 transport's table)."""


def is_modern_request(headers: RequestHeaders, message: Any) -> bool:
    """True for a 2026-07-28 POST: a modern `MCP-Protocol-Version`, or the `_meta` envelope in the params."""
    version = headers.protocol_version
    if version is not None and versions.is_modern(version):
        return True
    return isinstance(message, dict) and versions.envelope_version(message.get("params")) is not None


def decode_header(value: str | None) -> str | None:
    """A header value as sent, or the UTF-8 text of an `=?base64?...?=` value; None when malformed."""
    if value is None or not (value.startswith("=?base64?") and value.endswith("?=")):
        return value
    payload = value[9:-2]
    try:
        raw = base64.b64decode(payload, validate=True)
        return raw.decode("utf-8") if base64.b64encode(raw).decode() == payload else None
    except (binascii.Error, UnicodeDecodeError):
        return None


def check_envelope(message: JsonDict, headers: RequestHeaders) -> BastionError | None:
    """The first way a modern request disagrees with itself or with us, or None when it is well formed."""
    meta = jsonrpc.as_dict(message.get("params")).get("_meta")
    if not isinstance(meta, dict):
        return InvalidParams("params._meta must carry the protocol version and client capabilities")
    missing = [
        k for k in (versions.META_PROTOCOL_VERSION, versions.META_CLIENT_CAPABILITIES) if k not in meta
    ]
    if missing:
        return InvalidParams("params._meta is missing required envelope keys", data={"missing": missing})
    if headers.duplicated is not None:
        return HeaderMismatch(f"{headers.duplicated} header appears more than once")
    version = meta[versions.META_PROTOCOL_VERSION]
    if headers.protocol_version is None or headers.protocol_version != version:
        return HeaderMismatch("MCP-Protocol-Version header does not match the request's protocol version")
    method = message["method"]
    if headers.mcp_method != method:
        return HeaderMismatch("Mcp-Method header does not match the request's method")
    member = NAME_PARAMS.get(method)
    if member is not None:
        value = message["params"].get(member)
        if value is not None and decode_header(headers.mcp_name) != value:
            return HeaderMismatch(f"Mcp-Name header does not match params.{member}")
    if not versions.is_modern(version):
        return UnsupportedVersion(
            "Unsupported protocol version",
            data={"supported": list(versions.MODERN_VERSIONS), "requested": str(version)[:64]},
        )
    return None


class _RequestSink:
    """`Outbound` of a stateless request: only what belongs to that request goes on its reply."""

    __slots__ = ("reply", "request_id")

    def __init__(self, reply: Reply, request_id: RequestId) -> None:
        self.reply = reply
        self.request_id = request_id

    async def send(self, message: JsonDict, related: RequestId | None) -> None:
        if related != self.request_id or self.reply.closed:
            return
        final = "method" not in message
        status = 200
        if final and isinstance(error := message.get("error"), dict):
            status = ERROR_STATUS.get(error.get("code"), 200)  # type: ignore[arg-type]
        self.reply.add(orjson.dumps(message), final, status)


class _ListenSink:
    """`Outbound` of a `subscriptions/listen` stream."""

    def __init__(self, listen: Listen, outlet: Outlet) -> None:
        self.listen = listen
        self.outlet = outlet
        self.calls: dict[RequestId, asyncio.Future[JsonDict]] = {}

    async def send(self, message: JsonDict, related: RequestId | None) -> None:
        if related is not None:
            future = self.calls.pop(related, None)
            if future is not None and not future.done() and "method" not in message:
                future.set_result(message)
            return
        stamped = self.listen.stamp(str(message.get("method")), jsonrpc.as_dict(message.get("params")))
        if stamped is not None:
            self.outlet.push(frame(orjson.dumps(stamped)))

    async def call(
        self, session: DownstreamSession, request_id: str, method: str, params: JsonDict
    ) -> JsonDict:
        future: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
        self.calls[request_id] = future
        await session.handle({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        return await future

    def end(self) -> None:
        """End the subscription gracefully (a `complete` result), e.g. when the gateway shuts down."""
        if self.outlet.finished or self.outlet.dropped:
            return
        self.outlet.push(frame(orjson.dumps(jsonrpc.result(self.listen.listen_id, self.listen.completion()))))
        self.outlet.finish()


class ModernEndpoint:
    """Serves 2026-07-28 POSTs for `/mcp` (the handshake endpoint hands them over)."""

    def __init__(self, gateway: Gateway, lifecycle: Lifecycle, rejections: Rejections) -> None:
        self._gateway = gateway
        self._lifecycle = lifecycle
        self._rejections = rejections
        self._listens: dict[DownstreamSession, _ListenSink] = {}
        self.in_flight = InFlight()
        """The stateless requests being served, for cancels sent as notifications."""
        gateway.session_listeners.append(self._on_session_event)

    def _on_session_event(self, event: str, session: DownstreamSession) -> None:
        if event == "end" and (sink := self._listens.pop(session, None)) is not None:
            sink.end()

    def end_listens(self) -> None:
        """Shutdown: end every listen stream gracefully."""
        for sink in list(self._listens.values()):
            sink.end()

    async def serve(
        self, scope: Scope, receive: Receive, send: Send, headers: RequestHeaders, message: Any
    ) -> None:
        """Serve one modern POST whose body is already parsed."""
        if not isinstance(message, dict):
            raise InvalidRequest("Body must be a single JSON-RPC request or notification object")
        kind = jsonrpc.classify(message)
        if kind is jsonrpc.Kind.NOTIFICATION:
            version = headers.protocol_version
            if version is None:  # the same error a request without the header gets
                raise HeaderMismatch("MCP-Protocol-Version header is required")
            if not versions.is_modern(version):
                raise UnsupportedVersion(
                    "Unsupported protocol version",
                    data={"supported": list(versions.MODERN_VERSIONS), "requested": version[:64]},
                )
            if headers.mcp_method is not None and headers.mcp_method != message["method"]:
                raise HeaderMismatch("Mcp-Method header does not match the notification's method")
            if message["method"] == "notifications/cancelled":
                await cancel_sessionless(self._gateway, self.in_flight, principal_of(scope).name, message)
            await send_empty(send, 202)
            return
        if kind is not jsonrpc.Kind.REQUEST:
            raise InvalidRequest("Body must be a single JSON-RPC request or notification object")
        request_id = message["id"]
        problem = check_envelope(message, headers)
        if problem is None and self._lifecycle.draining:
            problem = UpstreamUnavailable("the gateway is shutting down; retry on another replica")
        if problem is not None:
            await self._rejections.reject(scope, send, problem, request_id=request_id)
            return
        if message["method"] == "subscriptions/listen":
            if not headers.accepts("text/event-stream"):
                await self._rejections.reject(
                    scope, send, InvalidRequest("subscriptions/listen needs text/event-stream"), status=406
                )
                return
            await self._listen(scope, receive, send, message)
            return
        await self._request(scope, receive, send, message)

    async def _request(self, scope: Scope, receive: Receive, send: Send, message: JsonDict) -> None:
        request_id = message["id"]
        reply = Reply(0)
        principal = principal_of(scope)
        session = await self._gateway.open_session(
            transport=TRANSPORT,
            outbound=_RequestSink(reply, request_id),
            principal=principal,
            remote=remote_of(scope),
            stateless=True,
        )
        watcher = asyncio.ensure_future(self._watch(receive, session, request_id, reply))
        self.in_flight.add(principal.name, request_id, session)
        try:
            await session.handle(message)
            mode = await reply.decided()
            if mode is Mode.JSON:
                await send_json(send, reply.status, reply.json_body())
            elif mode is Mode.SSE and reply.outlet is not None:
                await send_sse(send, receive, reply.outlet, watch=False)
        finally:
            self.in_flight.discard(principal.name, request_id, session)
            watcher.cancel()
            await session.aclose()

    @staticmethod
    async def _watch(
        receive: Receive, session: DownstreamSession, request_id: RequestId, reply: Reply
    ) -> None:
        """Closing the response is the client's cancel (2026-07-28): stop the call and the reply."""
        while (await receive())["type"] != "http.disconnect":
            pass
        if reply.mode is Mode.JSON or (reply.outlet is not None and reply.outlet.finished):
            return  # the reply was complete: this is just the end of the exchange
        await session.cancel(request_id)
        reply.close()
        if reply.outlet is not None:
            reply.outlet.drop()

    async def _listen(self, scope: Scope, receive: Receive, send: Send, message: JsonDict) -> None:
        request_id = message["id"]
        params = jsonrpc.as_dict(message.get("params"))
        listen, uris = Listen.asked(request_id, params)
        outlet = Outlet("listen stream")
        sink = _ListenSink(listen, outlet)
        session = await self._gateway.open_session(
            transport=TRANSPORT, outbound=sink, principal=principal_of(scope), remote=remote_of(scope)
        )
        meta = params["_meta"]
        info = session.info
        info.protocol_version = meta[versions.META_PROTOCOL_VERSION]
        caps = meta[versions.META_CLIENT_CAPABILITIES]
        info.client_capabilities = caps if isinstance(caps, dict) else {}
        client = jsonrpc.as_dict(meta.get(versions.META_CLIENT_INFO))
        info.client_name = str(client.get("name", ""))[:200]
        info.client_version = str(client.get("version", ""))[:100]
        session.restore()  # it takes session-level notifications from now on, like a handshake-era session
        self._listens[session] = sink
        try:
            for number, uri in enumerate(uris):
                # Through the session, so policy decides which resources this principal may watch.
                answer = await sink.call(
                    session, f"bastion-listen-{number}", "resources/subscribe", {"uri": uri}
                )
                if "result" in answer:
                    listen.uris.add(uri)
            ack = listen.acknowledgement()
            if self._lifecycle.draining:
                sink.end()
            await send_sse(
                send,
                receive,
                outlet,
                first=frame(orjson.dumps(ack)),
                on_keepalive=lambda: setattr(session, "last_active", time.monotonic()),
            )
        finally:
            self._listens.pop(session, None)
            await session.aclose()
