"""A client's MCP session as Bastion serves it: lifecycle, dispatch, the pipeline, and relays back to the client.

Rules:
- Handshake era: `initialize` comes first (only `ping` may precede it); Bastion answers it itself with its own
  negotiated version and the merged capabilities of the upstreams. 2026-07-28 era: a request carrying the `_meta`
  envelope needs no handshake and is answered with `resultType` and `serverInfo`.
- Requests run concurrently (bounded per session); each reply goes to the `Outbound` with `related` = its id.
- Every routed call and list goes through the pipeline (request path, upstream, response path in reverse), and
  every exchange is observed (audit, metrics) before its response is released, rejections included.
- A client's `notifications/cancelled` cancels the task serving that request, which cancels the upstream call.
- Server->client requests from upstreams are relayed only if this client declared the capability.
- Each call uses the upstream connection of its isolation scope (`gateway.pool`); who receives what an upstream
  sends is decided by `upstream/association.py`, never here.
- `logging/setLevel` sets this session's own level: Bastion filters log notifications per session and tells the
  session's own scoped upstream connections; it never changes the level other sessions get.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any, Final

from bastion import __version__
from bastion.errors import (
    BastionError,
    Denied,
    InternalError,
    InvalidParams,
    InvalidRequest,
    MethodNotFound,
    RateLimited,
    Reason,
    UpstreamTimeout,
    error_from_exception,
)
from bastion.pipeline import refusals
from bastion.pipeline.exchange import Exchange, SessionInfo
from bastion.pipeline.traffic_notices import notification_notice, relay_notice
from bastion.protocol import jsonrpc, versions
from bastion.protocol.methods import CLIENT_REQUESTS, LIST_CHANGED, LIST_KEYS, Route
from bastion.protocol.subscriptions import Listen
from bastion.routing.parked import AskItem, ParkedCall
from bastion.telemetry.context import CURRENT_EXCHANGE
from bastion.transports.base import JsonDict, Outbound, RequestId

if TYPE_CHECKING:
    from bastion.core.ports import SessionHost as Gateway

logger = logging.getLogger("bastion.session")

SERVER_INFO: Final = {"name": "bastion", "version": __version__}
META_UPSTREAMS: Final = "dev.bastion/upstreams"
"""Metadata key of the servers behind Bastion (its own `serverInfo` is the one identity clients see)."""
RELAY_TIMEOUT_SECONDS: Final = 600.0
"""How long a relayed server->client request (sampling, elicitation: a human may be involved) may take."""
MAX_INPUT_ROUNDS: Final = 8
"""Rounds of 2026-07-28 `input_required` bridged for a handshake-era client before giving up."""
_CAPABILITY_OF_SERVER_REQUEST: Final = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}
HANDSHAKE_ONLY_METHODS: Final = frozenset(
    {"resources/subscribe", "resources/unsubscribe", "logging/setLevel"}
)
"""Handshake-era methods a 2026-07-28 upstream session cannot serve."""
_MODERN_ONLY_RESULT_KEYS: Final = ("resultType", "ttlMs", "cacheScope")
LOG_LEVELS: Final = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
"""RFC 5424 severities in MCP's `logging/setLevel`, least severe first."""


class DownstreamSession:
    """One client session (or, for a stateless 2026-07-28 HTTP request, one request's worth of session)."""

    def __init__(
        self, gateway: Gateway, info: SessionInfo, outbound: Outbound, *, stateless: bool = False
    ) -> None:
        self.session_id = info.session_id
        self.info = info
        self.stateless = stateless
        self.closed = False
        self.initialized = False
        self._handshaken = False
        self.last_active = time.monotonic()
        self._gateway = gateway
        self._outbound = outbound
        self._tasks: dict[RequestId, asyncio.Task[None]] = {}
        self._exchanges: dict[RequestId, Exchange] = {}
        """Exchanges in flight, so relayed server->client traffic knows its upstream (for guardrail overrides)."""
        self._relay_ids = itertools.count(1)
        self._relays: dict[RequestId, asyncio.Future[JsonDict]] = {}
        self.subscriptions: set[str] = set()
        self.wants_logs = False
        self.log_level = "info"
        """The least severe log level this client asked for (`logging/setLevel`)."""
        self._input_slots: dict[RequestId, asyncio.Queue[AskItem]] = {}
        self._listen: Listen | None = None
        self._targets: dict[RequestId, tuple[str, str]] = {}
        """(server, item) of each routed call in flight, so a server request during it is attributed."""
        self._listen_end = asyncio.Event()
        self._listed: set[str] = set()
        self._stale: set[str] = set()
        """Lists this client fetched and was told changed since: more list_changed would say nothing new."""

    @property
    def principal(self) -> Any:
        return self.info.principal

    @property
    def principal_name(self) -> str:
        """The name of the principal this session belongs to (association rules)."""
        return str(self.info.principal.name)

    def accepts_log(self, params: JsonDict) -> bool:
        """Whether a `notifications/message` with these params is at or above this session's level."""
        level = params.get("level")
        if not self.wants_logs or level not in LOG_LEVELS:
            return False
        return LOG_LEVELS.index(level) >= LOG_LEVELS.index(self.log_level)

    @property
    def busy(self) -> bool:
        """True while requests of this session are being served."""
        return bool(self._tasks)

    def in_flight(self, request_id: RequestId) -> bool:
        """Whether this session is serving a request with this id now."""
        return request_id in self._tasks

    async def drain(self, timeout: float) -> bool:
        """Wait (at most `timeout` seconds) for the requests in flight to finish; True when none is left."""
        if self._tasks:
            await asyncio.wait(list(self._tasks.values()), timeout=timeout)
        return not self._tasks

    def restore(self) -> None:
        """Mark a session rebuilt from a sealed id as past its handshake (another replica did it)."""
        self._handshaken = True
        self.initialized = True

    # -- inbound -----------------------------------------------------------------------------------------------

    async def handle(self, message: JsonDict) -> None:
        """Feed one shape-valid JSON-RPC message from the client."""
        self.last_active = time.monotonic()
        if self.closed:
            return
        if "method" in message:
            if "id" in message:
                await self._accept_request(message)
            else:
                await self._on_notification(message)
        else:
            future = self._relays.pop(message.get("id"), None)  # type: ignore[arg-type]
            if future is not None and not future.done():
                future.set_result(message)

    async def _accept_request(self, message: JsonDict) -> None:
        request_id = message["id"]
        if request_id in self._tasks:
            await self._send(
                jsonrpc.error(
                    request_id, -32600, "request id already in flight", {"reason": "invalid_request"}
                ),
                request_id,
            )
            await self._audit_refusal(message, {"code": -32600, "data": {"reason": "invalid_request"}})
            return
        if len(self._tasks) >= self._gateway.config.limits.max_concurrent_per_session:
            exc = RateLimited("too many concurrent requests in this session", data={"retryAfter": 1})
            await self._send(
                {"jsonrpc": "2.0", "id": request_id, "error": exc.to_jsonrpc_error()}, request_id
            )
            await self._audit_refusal(message, exc.to_jsonrpc_error())
            return
        task = asyncio.create_task(self._serve(message))
        self._tasks[request_id] = task
        task.add_done_callback(lambda _t: self._done(request_id))

    def _done(self, request_id: RequestId) -> None:
        self._tasks.pop(request_id, None)
        self._targets.pop(request_id, None)

    async def _audit_refusal(self, message: JsonDict, error: JsonDict) -> None:
        """Record a request refused before it was served (the refusal was already sent either way)."""
        with contextlib.suppress(BastionError):
            await self._observe_local(
                message["method"], message.get("params") or {}, message["id"], {"error": error}
            )

    async def _on_notification(self, message: JsonDict) -> None:
        method = message["method"]
        params = message.get("params") or {}
        if method == "notifications/initialized":
            self.initialized = True
        elif method == "notifications/cancelled":
            task = self._tasks.get(params.get("requestId"))  # type: ignore[arg-type]
            if task is not None:
                task.cancel()
        elif method == "notifications/roots/list_changed":
            await self._gateway.broadcast_upstream(method, params, self)
        await self._gateway.emit(notification_notice(self._gateway, self, method, params))

    async def _send(self, message: JsonDict, related: RequestId | None) -> None:
        try:
            await self._outbound.send(message, related)
        except Exception:  # the client went away; nothing more can be delivered to it
            logger.debug("session %s: could not deliver a message", self.session_id[:8])

    # -- serving one request -----------------------------------------------------------------------------------

    async def _serve(self, message: JsonDict) -> None:
        request_id = message["id"]
        method = message["method"]
        params = message.get("params") or {}
        CURRENT_EXCHANGE.set(None)
        try:
            reply = await self._dispatch(method, params, request_id)
        except asyncio.CancelledError:
            return  # cancelled by the client: the spec says no response
        except BastionError as exc:
            reply = {"error": exc.to_jsonrpc_error()}
        except Exception:  # last resort for this request: log the details, tell the client nothing internal
            logger.exception("session %s: %s failed", self.session_id[:8], method)
            reply = {"error": InternalError("internal error").to_jsonrpc_error()}
        if CURRENT_EXCHANGE.get() is None:  # answered without the pipeline: audited all the same
            reply = await self._observe_local(method, params, request_id, reply)
        await self._send({"jsonrpc": "2.0", "id": request_id, **reply}, request_id)

    async def _observe_local(
        self, method: str, params: JsonDict, request_id: RequestId, reply: JsonDict
    ) -> JsonDict:
        """Observe a request Bastion answered itself (handshake, ping, `logging/setLevel`, refusals before any
        routing), so every request that crosses the gateway is an audit event; strict audit may withhold it."""
        exchange = self._exchange(method, params, request_id)
        error = reply.get("error")
        if isinstance(error, dict):
            exchange.error, exchange.outcome = error, "error"
        else:
            exchange.result = jsonrpc.as_dict(reply.get("result"))
        try:
            await self._gateway.observe(exchange)
        except BastionError as exc:
            return {"error": exc.to_jsonrpc_error()}
        return reply

    async def _dispatch(self, method: str, params: JsonDict, request_id: RequestId) -> JsonDict:
        modern = versions.envelope_version(params) is not None
        if modern:
            self._adopt_envelope(params)
        route = CLIENT_REQUESTS.get(method)
        if modern and method in versions.REMOVED_IN_MODERN:
            raise MethodNotFound(f"Method not found: {method}")
        if method == "initialize":
            return {"result": self._initialize(params)}
        if method == "ping":
            return {"result": {}}
        if method == "server/discover":
            return {"result": self._discover()}
        if not modern and not self.stateless and not self._handshake_done():
            raise InvalidRequest("session is not initialized: send initialize first")
        if method == "subscriptions/listen" and modern and not self.stateless:
            return await self._listen_here(params, request_id)
        if route is None or route is Route.LOCAL:
            raise MethodNotFound(f"Method not found: {method}")
        if route is Route.BROADCAST:
            return await self._set_log_level(params, request_id)
        if route is Route.LIST:
            reply = await self._list(method, params, request_id)
        else:
            reply = await self._call(method, params, request_id, route, modern)
        if modern and "result" in reply:
            reply["result"] = self._modern_result(method, reply["result"])
        return reply

    def _needs_handshake_era(self, method: str, modern: bool) -> bool:
        """Whether this call needs a handshake-era upstream session: a handshake-era client that can answer
        server requests mid-call or asked for logs, or a method the 2026-07-28 era removed (`upstream/eras.py`)."""
        if modern:
            return False
        caps = self.info.client_capabilities
        return (
            self.wants_logs  # it set a log level: its calls' log messages come on a handshake-era session
            or method in HANDSHAKE_ONLY_METHODS
            or any(c in caps for c in _CAPABILITY_OF_SERVER_REQUEST.values())
        )

    def _handshake_done(self) -> bool:
        return self.initialized or self._handshaken

    def _adopt_envelope(self, params: JsonDict) -> None:
        meta = jsonrpc.as_dict(params.get("_meta"))
        self.info.protocol_version = versions.envelope_version(params) or ""
        caps = meta.get(versions.META_CLIENT_CAPABILITIES)
        if isinstance(caps, dict):
            self.info.client_capabilities = caps
        client = meta.get(versions.META_CLIENT_INFO)
        if isinstance(client, dict):
            self.info.client_name = str(client.get("name", ""))[:200]
            self.info.client_version = str(client.get("version", ""))[:100]

    def _initialize(self, params: JsonDict) -> JsonDict:
        if self._handshaken:
            raise InvalidRequest("session is already initialized")
        self._handshaken = True
        self.info.protocol_version = versions.negotiate(params.get("protocolVersion"))
        caps = params.get("capabilities")
        self.info.client_capabilities = caps if isinstance(caps, dict) else {}
        client = jsonrpc.as_dict(params.get("clientInfo"))
        self.info.client_name = str(client.get("name", ""))[:200]
        self.info.client_version = str(client.get("version", ""))[:100]
        result: JsonDict = {
            "protocolVersion": self.info.protocol_version,
            "capabilities": self._gateway.merged_capabilities(),
            "serverInfo": SERVER_INFO,
            "_meta": {META_UPSTREAMS: self._gateway.upstream_identities()},
        }
        if instructions := self._gateway.merged_instructions():
            result["instructions"] = instructions
        if self._needs_handshake_era("", modern=False):
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

    def _modern_result(self, method: str, result: JsonDict) -> JsonDict:
        extra: JsonDict = {}
        if "resultType" not in result:
            extra["resultType"] = "complete"
        if (method in LIST_KEYS or method == "resources/read") and "ttlMs" not in result:
            extra["ttlMs"] = 0
            extra["cacheScope"] = "private"  # filtered per principal, so never shareable
        meta = jsonrpc.as_dict(result.get("_meta"))
        if meta.get(versions.META_SERVER_INFO) is not SERVER_INFO:
            # The client's server is Bastion, whatever upstream answered.
            extra["_meta"] = {**meta, versions.META_SERVER_INFO: SERVER_INFO}
        return {**result, **extra} if extra else result

    # -- lists and calls ---------------------------------------------------------------------------------------

    def _exchange(self, method: str, params: JsonDict, request_id: RequestId) -> Exchange:
        exchange = Exchange(session=self.info, method=method, params=params, request_id=request_id)
        exchange.asker = functools.partial(self._ask, exchange)
        self._exchanges[request_id] = exchange
        return exchange

    async def _list(self, method: str, params: JsonDict, request_id: RequestId) -> JsonDict:
        if params.get("cursor") is not None:
            raise InvalidParams("Invalid cursor")  # Bastion serves every list as one page: no cursor is valid
        exchange = self._exchange(method, params, request_id)
        key = LIST_KEYS[method]

        async def work() -> JsonDict:
            error = await self._gateway.pipeline.run_request(exchange)
            if error is not None:
                raise error
            items = await self._gateway.catalog.aggregate(method)
            if self._gateway.list_filter is not None:
                items = self._gateway.list_filter(self.info.principal, method, items)
            if self._gateway.config.routing.capability_aware_lists:
                items = self._gateway.needs.filter(method, items, self.info.client_capabilities, self._locate)
            exchange.result = {key: items}
            error = await self._gateway.pipeline.run_response(exchange)
            if error is not None:
                raise error
            self._listed.add(method)
            self._stale.discard(method)
            return {"result": exchange.result}

        return await self._observed(exchange, work)

    def _locate(self, public: str) -> tuple[str, str] | None:
        """Where a listed name lives: (server, its own name); a resource URI is its own name."""
        catalog = self._gateway.catalog
        if "://" in public:
            server = catalog.server_of_uri(public)
            return (server, public) if server is not None else None
        return catalog.split_name(public)

    async def _call(
        self, method: str, params: JsonDict, request_id: RequestId, route: Route, modern: bool
    ) -> JsonDict:
        exchange = self._exchange(method, params, request_id)

        async def work() -> JsonDict:
            server, target = await self._resolve(route, method, params)
            exchange.server, exchange.target = server, target
            if target is not None:
                self._targets[request_id] = (server, target)
            error = await self._gateway.pipeline.run_request(exchange)
            if error is not None:
                return self._refused(exchange, error)
            upstream_params = self._upstream_params(route, exchange.params, target, modern)
            conn = await self._gateway.pool.acquire(
                server, self, handshake_only=self._needs_handshake_era(method, modern)
            )
            if route is Route.TOOL and conn.allowed_tools is not None and target not in conn.allowed_tools:
                # This scope's own process serves another definition, held by the pins check: no oracle.
                raise InvalidParams(f"Unknown tool: {params.get('name')}")
            started = time.perf_counter()
            self._gateway.pool.using(conn, 1)
            try:
                if modern and not conn.modern:
                    reply = await self._call_for_modern_client(
                        conn, method, upstream_params, params, request_id, conn.timeout_for(method, target)
                    )
                else:
                    reply = await conn.request(
                        method,
                        upstream_params,
                        owner=self,
                        downstream_id=request_id,
                        timeout=conn.timeout_for(method, target),
                        client_capabilities=self.info.client_capabilities,
                    )
                if conn.modern and not modern:
                    reply = await self._bridge_input_required(
                        conn, method, upstream_params, reply, request_id
                    )
            finally:
                self._gateway.pool.using(conn, -1)
                exchange.upstream_seconds = time.perf_counter() - started
            if "error" in reply:
                allowed, error = await self._gateway.screen_channel("error", server, reply["error"], method)
                if not allowed:
                    exchange.outcome = "deny"  # audited as a refusal, like a blocked result
                    raise Denied(
                        "Blocked by Bastion guardrails (error of the upstream)",
                        reason=Reason.GUARDRAIL_BLOCKED,
                    )
                exchange.error = error
                exchange.outcome = "error"
                return {"error": error}
            result = reply.get("result")
            exchange.result = result if isinstance(result, dict) else {}
            error = await self._gateway.pipeline.run_response(exchange)
            if error is not None:
                return self._refused(exchange, error)
            result = exchange.result
            if conn.modern and not modern:
                result = {k: v for k, v in result.items() if k not in _MODERN_ONLY_RESULT_KEYS}
            if not modern and versions.META_SERVER_INFO in jsonrpc.as_dict(result.get("_meta")):
                # One identity in both eras: the client's server is Bastion, whatever answered upstream.
                result = {**result, "_meta": {**result["_meta"], versions.META_SERVER_INFO: SERVER_INFO}}
            self._after_call(method, server, params, result)
            return {"result": result}

        return await self._observed(exchange, work)

    async def _set_log_level(self, params: JsonDict, request_id: RequestId) -> JsonDict:
        """`logging/setLevel` for this session only: through the pipeline (policy, audit), then its own scopes."""
        level = params.get("level")
        if level not in LOG_LEVELS:
            raise InvalidParams("params.level must be a logging level")
        exchange = self._exchange("logging/setLevel", params, request_id)

        async def work() -> JsonDict:
            error = await self._gateway.pipeline.run_request(exchange)
            if error is not None:
                raise error
            self.wants_logs, self.log_level = True, str(level)
            await self._gateway.set_log_level(self, str(level))
            exchange.result = {}
            return {"result": {}}

        return await self._observed(exchange, work)

    def _refused(self, exchange: Exchange, error: BastionError) -> JsonDict:
        """A refusal as the client gets it: an `isError` result when `refusals: result` allows, else the error."""
        refusal = refusals.refusal_result(exchange, error, self._gateway.config.refusals)
        if refusal is None:
            raise error
        exchange.error = error.to_jsonrpc_error()  # audit records the refusal, whatever the client is shown
        exchange.result = refusal
        return {"result": refusal}

    async def _observed(self, exchange: Exchange, work: Any) -> JsonDict:
        """Run `work`, then let every observer (audit first) see the exchange before the reply is released."""
        CURRENT_EXCHANGE.set(exchange)  # log lines carry its ids; this task serves only this request
        tracer = self._gateway.pipeline.tracer
        try:
            if tracer is None:
                return await self._observe(exchange, work)
            with tracer.request_span(exchange):
                return await self._observe(exchange, work)
        finally:
            self._exchanges.pop(exchange.request_id, None)

    async def _observe(self, exchange: Exchange, work: Any) -> JsonDict:
        failure: BastionError | None = None
        reply: JsonDict = {}
        try:
            reply = await work()
        except asyncio.CancelledError:
            exchange.outcome = "cancelled"
            exchange.error = {"code": -32800, "message": "cancelled"}
            with contextlib.suppress(Exception):
                await asyncio.shield(self._gateway.observe(exchange))
            raise
        except Exception as exc:
            failure = error_from_exception(exc)
            if not isinstance(exc, BastionError):
                logger.exception("session %s: %s failed", self.session_id[:8], exchange.method)
            exchange.error = failure.to_jsonrpc_error()
            if exchange.outcome in ("allow", "flag", "redact"):
                exchange.outcome = "error"
        await self._gateway.observe(exchange)  # strict audit raises here: the reply is withheld
        if failure is not None:
            raise failure
        return reply

    async def _resolve(self, route: Route, method: str, params: JsonDict) -> tuple[str, str | None]:
        catalog = self._gateway.catalog
        if route in (Route.TOOL, Route.PROMPT):
            name = params.get("name")
            if not isinstance(name, str):
                raise InvalidParams("params.name must be a string")
            return await catalog.resolve_named(method, name)
        if route is Route.URI:
            uri = params.get("uri")
            if not isinstance(uri, str):
                raise InvalidParams("params.uri must be a string")
            return await catalog.resolve_uri(uri), uri
        if route is Route.COMPLETION:
            ref = jsonrpc.as_dict(params.get("ref"))
            if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
                return await catalog.resolve_named("prompts/get", ref["name"])
            if ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
                server = catalog.resolve_template(ref["uri"]) or await catalog.resolve_uri(ref["uri"])
                return server, ref["uri"]
            raise InvalidParams("params.ref must name a prompt or a resource")
        task_id = params.get("taskId")
        owner = catalog.task_server(task_id) if isinstance(task_id, str) else None
        if owner is None:
            raise InvalidParams("Unknown task")
        return owner, task_id

    def _upstream_params(self, route: Route, params: JsonDict, target: str | None, modern: bool) -> JsonDict:
        out = params
        if route in (Route.TOOL, Route.PROMPT) and target is not None and params.get("name") != target:
            out = {**params, "name": target}
        elif route is Route.COMPLETION and target is not None:
            ref = params["ref"]
            if ref.get("type") == "ref/prompt" and ref.get("name") != target:
                out = {**params, "ref": {**ref, "name": target}}
        if modern and isinstance(out.get("_meta"), dict):
            # The caller's envelope is re-stated by the upstream connection for its own hop.
            meta = {
                k: v
                for k, v in out["_meta"].items()
                if not k.startswith("io.modelcontextprotocol/") or k == "io.modelcontextprotocol/related-task"
            }
            out = {**out, "_meta": meta} if meta else {k: v for k, v in out.items() if k != "_meta"}
        return out

    def _after_call(self, method: str, server: str, params: JsonDict, result: JsonDict) -> None:
        task = result.get("task")
        if isinstance(task, dict) and isinstance(task.get("taskId"), str):
            self._gateway.catalog.remember_task(task["taskId"], server)
        if method == "resources/subscribe" and isinstance(params.get("uri"), str):
            self.subscriptions.add(params["uri"])
        elif method == "resources/unsubscribe":
            self.subscriptions.discard(params.get("uri", ""))

    async def _call_for_modern_client(
        self,
        conn: Any,
        method: str,
        upstream_params: JsonDict,
        params: JsonDict,
        request_id: RequestId,
        timeout: float,
    ) -> JsonDict:
        """A 2026-07-28 client calling a handshake-era upstream: server->client requests become MRTR rounds."""
        lot = self._gateway.parking
        if "requestState" in params:
            call = lot.take(params["requestState"], self.info.principal.name)
            lot.answer(call, params.get("inputResponses"))
            return await lot.wait(call)
        upstream_params = {
            k: v for k, v in upstream_params.items() if k not in ("inputResponses", "requestState")
        }
        asks: asyncio.Queue[AskItem] = asyncio.Queue()
        self._input_slots[request_id] = asks
        task = asyncio.ensure_future(
            conn.request(method, upstream_params, owner=self, downstream_id=request_id, timeout=timeout)
        )
        call = ParkedCall(task=task, asks=asks, principal=self.info.principal.name)
        try:
            return await lot.wait(call)
        except asyncio.CancelledError:
            task.cancel()
            raise

    async def _bridge_input_required(
        self, conn: Any, method: str, params: JsonDict, reply: JsonDict, request_id: RequestId
    ) -> JsonDict:
        """Turn a 2026-07-28 `input_required` result into real requests to this handshake-era client."""
        for _ in range(MAX_INPUT_ROUNDS):
            result = reply.get("result")
            if not isinstance(result, dict) or result.get("resultType") != "input_required":
                return reply
            answers: JsonDict = {}
            for key, ask in (result.get("inputRequests") or {}).items():
                answer = await self.relay_request(
                    {
                        "jsonrpc": "2.0",
                        "id": 0,
                        "method": ask.get("method"),
                        "params": ask.get("params") or {},
                    },
                    request_id,
                    server=conn.name,
                )
                if "error" in answer:
                    return {"error": answer["error"]}
                answers[key] = answer.get("result", {})
            params = {**params, "inputResponses": answers}
            if "requestState" in result:
                params["requestState"] = result["requestState"]
            reply = await conn.request(
                method,
                params,
                owner=self,
                downstream_id=request_id,
                client_capabilities=self.info.client_capabilities,
            )
        return {"error": InvalidRequest("too many input rounds").to_jsonrpc_error()}

    async def _listen_here(self, params: JsonDict, request_id: RequestId) -> JsonDict:
        """`subscriptions/listen` on a session with its own stream (stdio): open until ended or cancelled."""
        if self._listen is not None:
            raise InvalidRequest("a subscriptions/listen is already open in this session")
        listen, uris = Listen.asked(request_id, params)
        for uri in uris:
            # Through the pipeline, so policy decides which resources this principal may watch.
            with contextlib.suppress(BastionError):
                answer = await self._call("resources/subscribe", {"uri": uri}, request_id, Route.URI, False)
                if "result" in answer:
                    listen.uris.add(uri)
        await self._send(listen.acknowledgement(), None)
        self._listen = listen
        try:
            await self._listen_end.wait()
        finally:
            self._listen = None
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

        `screen=False` is for Bastion's own questions (`_ask`), which are not upstream content.
        """
        answer = await self._relay_request(message, related, screen=screen)
        await self._gateway.emit(relay_notice(self._gateway, self, message, related, answer, server=server))
        return answer

    async def _relay_request(self, message: JsonDict, related: RequestId | None, *, screen: bool) -> JsonDict:
        method = message.get("method", "")
        capability = _CAPABILITY_OF_SERVER_REQUEST.get(method)
        if capability and related is not None and (target := self._targets.get(related)) is not None:
            self._gateway.needs.learn(*target, capability)
        slot = self._input_slots.get(related) if related is not None else None
        if slot is not None:  # a 2026-07-28 client's call: the request becomes an `input_required` round
            future: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
            await slot.put((message, future))
            try:
                return await asyncio.wait_for(future, RELAY_TIMEOUT_SECONDS)
            except TimeoutError:
                return {"error": UpstreamTimeout("the client did not answer in time").to_jsonrpc_error()}
        if self.stateless or (capability and capability not in self.info.client_capabilities):
            return {"error": {"code": -32601, "message": f"Client does not support {method}"}}
        params = message.get("params") or {}
        allowed = True
        if screen:
            allowed, params = await self._gateway.screen_channel(
                "request", self._server_of(related), params, method
            )
        if not allowed:
            return {
                "error": Denied(
                    f"Bastion guardrails withheld {method}", reason=Reason.GUARDRAIL_BLOCKED
                ).to_jsonrpc_error()
            }
        relay_id = f"bastion-{next(self._relay_ids)}"
        future = asyncio.get_running_loop().create_future()
        self._relays[relay_id] = future
        try:
            await self._send(
                {"jsonrpc": "2.0", "id": relay_id, "method": method, "params": params},
                related,
            )
            return await asyncio.wait_for(future, RELAY_TIMEOUT_SECONDS)
        except TimeoutError:
            return {"error": UpstreamTimeout("the client did not answer in time").to_jsonrpc_error()}
        finally:
            self._relays.pop(relay_id, None)

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
                    "notification", self._server_of(related), content, str(method)
                )
                if not allowed:
                    return
                message = {**message, "params": {**params, **content}}
        await self._send(message, related)

    def _server_of(self, related: RequestId | None) -> str | None:
        """The upstream serving this session's request `related`, while it is in flight."""
        exchange = self._exchanges.get(related) if related is not None else None
        return exchange.server if exchange is not None else None

    async def notify(self, method: str, params: JsonDict | None = None) -> None:
        """Send a session-level notification (list_changed, resource updates)."""
        if self._listen is not None:  # a 2026-07-28 client: only what it listens for, stamped
            if (stamped := self._listen.stamp(method, params)) is not None:
                await self._send(stamped, None)
            return
        if self.initialized and not self.stateless:
            listing = LIST_CHANGED.get(method)
            if listing is not None and listing in self._listed:
                if listing in self._stale:
                    return  # told already, and it has not listed since: one notice covers every change
                self._stale.add(listing)
            await self._send(jsonrpc.notification(method, params), None)

    async def _ask(self, exchange: Exchange, question: str) -> bool:
        """Ask a human: an operator (the approvals queue) unless the rule opted into asking this client's user.

        The client is the agent under check: its answer is user consent, never operator approval, so it is asked
        only where a rule says so (`ask_client`) and it can show a form; otherwise an operator decides.
        """
        elicitation = self.info.client_capabilities.get("elicitation")
        can_elicit = isinstance(elicitation, dict) and (not elicitation or "form" in elicitation)
        if not exchange.ask_client or self.stateless or not can_elicit:
            queue = self._gateway.approval_asker(self, exchange)
            return queue is not None and await queue(question)
        schema = {
            "type": "object",
            "required": ["approve"],
            "properties": {"approve": {"type": "boolean", "title": "Approve this call?"}},
        }
        answer = await self.relay_request(
            {
                "method": "elicitation/create",
                "params": {"mode": "form", "message": question, "requestedSchema": schema},
            },
            exchange.request_id,
            screen=False,
        )
        result = jsonrpc.as_dict(answer.get("result"))
        return result.get("action") == "accept" and bool(
            jsonrpc.as_dict(result.get("content")).get("approve")
        )

    async def cancel(self, request_id: RequestId) -> None:
        """Cancel one in-flight request (a 2026-07-28 HTTP client closed its stream)."""
        task = self._tasks.get(request_id)
        if task is not None:
            task.cancel()

    async def aclose(self) -> None:
        """End the session: cancel in-flight work (upstreams get `notifications/cancelled`), drop relays."""
        if self.closed:
            return
        self.closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        for future in self._relays.values():
            if not future.done():
                future.cancel()
        self._relays.clear()
        await self._gateway.session_ended(self)
