"""A client's MCP session as Bastion serves it: the async adapter around the sans-IO session core.

The protocol state (handshake, era, ids in flight, cancellation, relay ids, subscriptions, log level) and its
rules live in `protocol/session.py`; this module does the I/O around it: tasks for requests, futures for relayed
server->client requests, sends to the `Outbound`. Routed calls and lists (the pipeline, the upstream, the
bridges between eras) are `session_calls.py`.

Rules:
- Requests run concurrently (bounded per session); each reply goes to the `Outbound` with `related` = its id.
- Every request Bastion answers is observed (audit, metrics) before its response is released, refusals included.
- A client's `notifications/cancelled` cancels the task serving that request, which cancels the upstream call.
- Server->client requests from upstreams are relayed only if this client declared the capability.
- Each call uses the upstream connection of its isolation scope (`gateway.pool`); who receives what an upstream
  sends is decided by `upstream/association.py`, never here.
- `logging/setLevel` sets this session's own level: Bastion filters log notifications per session and tells the
  session's own scoped upstream connections; it never changes the level other sessions get.
- Errors become JSON-RPC errors in one place, `bastion.errors.error_response`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING, Any, Final

from bastion.core.session_calls import SERVER_INFO, SessionCalls, Work
from bastion.errors import (
    BastionError,
    Denied,
    Reason,
    UpstreamTimeout,
    error_response,
)
from bastion.pipeline.context import CURRENT_EXCHANGE
from bastion.pipeline.exchange import SessionInfo
from bastion.pipeline.traffic_notices import notification_notice, relay_notice
from bastion.protocol import versions
from bastion.protocol.methods import Route
from bastion.protocol.session import (
    CAPABILITY_OF_SERVER_REQUEST,
    LOG_LEVELS,
    Era,
    Event,
    Hello,
    SessionState,
    Step,
    hello_of_envelope,
    hello_of_initialize,
    relay_refusal,
)
from bastion.transports.base import JsonDict, Outbound, RequestId

if TYPE_CHECKING:
    from bastion.core.ports import SessionHost as Gateway

__all__ = ["LOG_LEVELS", "SERVER_INFO", "DownstreamSession"]

logger = logging.getLogger("bastion.session")

META_UPSTREAMS: Final = "dev.bastion/upstreams"
"""Metadata key of the servers behind Bastion (its own `serverInfo` is the one identity clients see)."""
RELAY_TIMEOUT_SECONDS: Final = 600.0
"""How long a relayed server->client request (sampling, elicitation: a human may be involved) may take."""


class DownstreamSession:
    """One client session (or, for a stateless 2026-07-28 HTTP request, one request's worth of session)."""

    def __init__(
        self, gateway: Gateway, info: SessionInfo, outbound: Outbound, *, stateless: bool = False
    ) -> None:
        self.session_id = info.session_id
        self.info = info
        self.state: SessionState[asyncio.Task[None], asyncio.Future[JsonDict]] = SessionState(
            stateless=stateless, max_in_flight=gateway.config.limits.max_concurrent_per_session
        )
        """The sans-IO protocol state of this session."""
        self.last_active = time.monotonic()
        self._gateway = gateway
        self._outbound = outbound
        self.calls = SessionCalls(self, gateway)
        """Routed calls and lists: the pipeline, the upstream, the bridges between eras."""
        self._listen_end = asyncio.Event()

    @property
    def stateless(self) -> bool:
        return self.state.stateless

    @property
    def closed(self) -> bool:
        return self.state.closed

    @property
    def initialized(self) -> bool:
        """The client confirmed the handshake (`notifications/initialized`, or a restored session)."""
        return self.state.initialized

    @property
    def subscriptions(self) -> set[str]:
        """Resource URIs this client subscribed to."""
        return self.state.subscriptions

    @property
    def wants_logs(self) -> bool:
        return self.state.wants_logs

    @property
    def log_level(self) -> str:
        """The least severe log level this client asked for (`logging/setLevel`)."""
        return self.state.log_level

    @property
    def principal(self) -> Any:
        return self.info.principal

    @property
    def principal_name(self) -> str:
        """The name of the principal this session belongs to (association rules)."""
        return str(self.info.principal.name)

    def accepts_log(self, params: JsonDict) -> bool:
        """Whether a `notifications/message` with these params is at or above this session's level."""
        return self.state.accepts_log(params)

    @property
    def busy(self) -> bool:
        """True while requests of this session are being served."""
        return bool(self.state.handles())

    def in_flight(self, request_id: RequestId) -> bool:
        """Whether this session is serving a request with this id now."""
        return self.state.in_flight(request_id)

    async def drain(self, timeout: float) -> bool:
        """Wait (at most `timeout` seconds) for the requests in flight to finish; True when none is left."""
        if tasks := self.state.handles():
            await asyncio.wait(tasks, timeout=timeout)
        return not self.state.handles()

    def restore(self) -> None:
        """Mark a session rebuilt from a sealed id as past its handshake (another replica did it)."""
        self.state.fire(Event.RESTORE)

    # -- inbound -----------------------------------------------------------------------------------------------

    async def handle(self, message: JsonDict) -> None:
        """Feed one shape-valid JSON-RPC message from the client."""
        self.last_active = time.monotonic()
        if self.state.closed:
            return
        if "method" in message:
            if "id" in message:
                await self._accept_request(message)
            else:
                await self._on_notification(message)
        else:
            future = self.state.settle_relay(message)
            if future is not None and not future.done():
                future.set_result(message)

    async def _accept_request(self, message: JsonDict) -> None:
        request_id = message["id"]
        refusal = self.state.admit(request_id)
        if refusal is not None:
            reply = error_response(request_id, refusal)
            await self._send(reply, request_id)
            await self._audit_refusal(message, reply["error"])
            return
        task = asyncio.create_task(self._serve(message))
        self.state.begin(request_id, task)
        task.add_done_callback(functools.partial(self.state.finish, request_id))

    async def _audit_refusal(self, message: JsonDict, error: JsonDict) -> None:
        """Record a request refused before it was served (the refusal was already sent either way)."""
        with contextlib.suppress(BastionError):
            await self.calls.observe_local(
                message["method"], message.get("params") or {}, message["id"], {"error": error}
            )

    async def _on_notification(self, message: JsonDict) -> None:
        method = message["method"]
        params = message.get("params") or {}
        if method == "notifications/initialized":
            self.state.fire(Event.INITIALIZED)
        elif method == "notifications/cancelled":
            task = self.state.cancel(params.get("requestId"))
            if task is not None:
                task.cancel()
        elif method == "notifications/roots/list_changed":
            await self._gateway.broadcast_upstream(method, params, self)
        await self._gateway.emit(notification_notice(self._gateway, self, method, params))

    async def _send(self, message: JsonDict, related: RequestId | None) -> None:
        try:
            await self._outbound.send(message, related)
        except Exception:  # noqa: BLE001 - the client went away (any transport's failure): nothing more can reach it
            logger.debug("session %s: could not deliver a message", self.session_id[:8])

    # -- serving one request -----------------------------------------------------------------------------------

    async def _serve(self, message: JsonDict) -> None:
        request_id = message["id"]
        method = message["method"]
        params = message.get("params") or {}
        CURRENT_EXCHANGE.set(None)
        try:
            served = self._dispatch(method, params, request_id)
            reply = served if isinstance(served, dict) else await served
        except asyncio.CancelledError:
            return  # cancelled by the client: the spec says no response
        except Exception as exc:  # the request's boundary: any error becomes its JSON-RPC error
            if not isinstance(exc, BastionError):
                logger.exception("session %s: %s failed", self.session_id[:8], method)
            reply = error_response(request_id, exc)
        if CURRENT_EXCHANGE.get() is None:  # answered without the pipeline: audited all the same
            reply = await self.calls.observe_local(method, params, request_id, reply)
        await self._send({"jsonrpc": "2.0", "id": request_id, **reply}, request_id)

    def _dispatch(self, method: str, params: JsonDict, request_id: RequestId) -> JsonDict | Work:
        """The reply of a request Bastion answers itself, or the work that serves it (awaited by `_serve`
        directly, so a routed call's coroutine chain is no deeper than it must be)."""
        hello = hello_of_envelope(params)
        era = Era.HANDSHAKE if hello is None else Era.MODERN
        if hello is not None:
            self._adopt(hello)
        step = self.state.step(method, era)
        if step is Step.INITIALIZE:
            return {"result": self._initialize(params)}
        if step is Step.PING:
            return {"result": {}}
        if step is Step.DISCOVER:
            return {"result": self._discover()}
        if step is Step.LISTEN:
            return self._listen_here(params, request_id)
        if step is Step.SET_LOG_LEVEL:
            return self.calls.set_log_level(params, request_id)
        if step is Step.LIST:
            return self.calls.list(method, params, request_id, era)
        return self.calls.call(method, params, request_id, era)

    def _adopt(self, hello: Hello) -> None:
        """What the client said about itself becomes the session's (audit, policy and relays read `info`)."""
        info = self.info
        info.protocol_version = hello.protocol_version
        if hello.capabilities is not None:
            info.client_capabilities = hello.capabilities
        if hello.client_name is not None:
            info.client_name = hello.client_name
        if hello.client_version is not None:
            info.client_version = hello.client_version

    def _initialize(self, params: JsonDict) -> JsonDict:
        self.state.initialize()
        self._adopt(hello_of_initialize(params))
        result: JsonDict = {
            "protocolVersion": self.info.protocol_version,
            "capabilities": self._gateway.merged_capabilities(),
            "serverInfo": SERVER_INFO,
            "_meta": {META_UPSTREAMS: self._gateway.upstream_identities()},
        }
        if instructions := self._gateway.merged_instructions():
            result["instructions"] = instructions
        if self.state.needs_handshake_era("", Era.HANDSHAKE, self.info.client_capabilities):
            self._gateway.warm_twins()
        self._gateway.session_started(self)
        return result

    def _discover(self) -> JsonDict:
        result: JsonDict = {
            "supportedVersions": list(versions.MODERN_VERSIONS),
            "capabilities": self._gateway.merged_capabilities(modern=True),
            "resultType": "complete",
            "ttlMs": 0,
            "cacheScope": "private",
            "_meta": {
                versions.META_SERVER_INFO: SERVER_INFO,
                META_UPSTREAMS: self._gateway.upstream_identities(),
            },
        }
        if instructions := self._gateway.merged_instructions():
            result["instructions"] = instructions
        return result

    async def _listen_here(self, params: JsonDict, request_id: RequestId) -> JsonDict:
        """`subscriptions/listen` on a session with its own stream (stdio): open until ended or cancelled."""
        listen, uris = self.state.begin_listen(request_id, params)
        for uri in uris:
            # Through the pipeline, so policy decides which resources this principal may watch.
            with contextlib.suppress(BastionError):
                answer = await self.calls.call(
                    "resources/subscribe", {"uri": uri}, request_id, Era.HANDSHAKE, route=Route.URI
                )
                if "result" in answer:
                    listen.uris.add(uri)
        await self._send(listen.acknowledgement(), None)
        self.state.listen = listen
        try:
            await self._listen_end.wait()
        finally:
            self.state.listen = None
        return {"result": listen.completion()}

    def end_listen(self) -> None:
        """End an open `subscriptions/listen` gracefully (shutdown): its `complete` result goes out."""
        self._listen_end.set()

    # -- toward the client -------------------------------------------------------------------------------------

    async def relay_request(
        self, message: JsonDict, related: RequestId | None, *, server: str = "", screen: bool = True
    ) -> JsonDict:
        """Forward a server->client request to this client and return its response message (audited with the
        upstream `server` that asked; empty when Bastion asks itself, as for an approval).

        `screen=False` is for Bastion's own questions (approvals), which are not upstream content.
        """
        answer = await self._relay_request(message, related, screen=screen)
        await self._gateway.emit(relay_notice(self._gateway, self, message, related, answer, server=server))
        return answer

    async def _relay_request(self, message: JsonDict, related: RequestId | None, *, screen: bool) -> JsonDict:
        method = message.get("method", "")
        capability = CAPABILITY_OF_SERVER_REQUEST.get(method)
        if capability and (target := self.state.target_of(related)) is not None:
            self._gateway.needs.learn(*target, capability)
        slot = self.calls.input_slot(related)
        if slot is not None:  # a 2026-07-28 client's call: the request becomes an `input_required` round
            future: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
            await slot.put((message, future))
            try:
                async with asyncio.timeout(RELAY_TIMEOUT_SECONDS):
                    return await future
            except TimeoutError:
                return error_response(message.get("id"), UpstreamTimeout("the client did not answer in time"))
        refusal = relay_refusal(method, self.info.client_capabilities, stateless=self.stateless)
        if refusal is not None:
            return error_response(message.get("id"), refusal)
        params = message.get("params") or {}
        allowed = True
        if screen:
            allowed, params = await self._gateway.screen_channel(
                "request", self.calls.server_of(related), params, method
            )
        if not allowed:
            denied = Denied(f"Bastion guardrails withheld {method}", reason=Reason.GUARDRAIL_BLOCKED)
            return error_response(message.get("id"), denied)
        future = asyncio.get_running_loop().create_future()
        relay_id = self.state.open_relay(future)
        try:
            await self._send(
                {"jsonrpc": "2.0", "id": relay_id, "method": method, "params": params},
                related,
            )
            async with asyncio.timeout(RELAY_TIMEOUT_SECONDS):
                return await future
        except TimeoutError:
            return error_response(message.get("id"), UpstreamTimeout("the client did not answer in time"))
        finally:
            self.state.drop_relay(relay_id)

    async def relay_notification(self, message: JsonDict, related: RequestId | None) -> None:
        """Forward an upstream notification to this client (logs and progress messages pass the guardrails)."""
        if self.stateless and related is None:
            return
        method = message.get("method")
        params = message.get("params")
        if method in ("notifications/message", "notifications/progress") and isinstance(params, dict):
            # Progress: only its `message` is content; the token and numbers are protocol fields, and a token
            # that looks like a secret must never be redacted, or the client can no longer match it to its call.
            content = {"message": params.get("message")} if method == "notifications/progress" else params
            if content.get("message") is not None or method == "notifications/message":
                allowed, content = await self._gateway.screen_channel(
                    "notification", self.calls.server_of(related), content, str(method)
                )
                if not allowed:
                    return
                message = {**message, "params": {**params, **content}}
        await self._send(message, related)

    async def notify(self, method: str, params: JsonDict | None = None) -> None:
        """Send a session-level notification (list_changed, resource updates)."""
        if (outgoing := self.state.outgoing(method, params)) is not None:
            await self._send(outgoing, None)

    async def cancel(self, request_id: RequestId) -> None:
        """Cancel one in-flight request (a 2026-07-28 HTTP client closed its stream)."""
        task = self.state.cancel(request_id)
        if task is not None:
            task.cancel()

    async def aclose(self) -> None:
        """End the session: cancel in-flight work (upstreams get `notifications/cancelled`), drop relays."""
        if self.closed:
            return
        self.state.fire(Event.CLOSE)
        tasks = self.state.handles()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        for future in self.state.drain_relays():
            if not future.done():
                future.cancel()
        await self._gateway.session_ended(self)
