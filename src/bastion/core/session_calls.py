"""The routed requests of one client session: lists, calls and `logging/setLevel` through the pipeline to the
upstreams, with the bridges between a client and an upstream of different eras.

Rules:
- Every routed call and list goes through the pipeline (request path, upstream, response path in reverse), and
  every exchange is observed (audit, metrics) before its response is released, rejections included.
- A refusal is an `isError` result where `refusals: result` allows, else the error; audit records the refusal.
- A 2026-07-28 client calling a handshake-era upstream gets its server->client requests as `input_required`
  rounds (`routing/parked.py`); a handshake-era client calling a 2026-07-28 upstream gets that upstream's
  `input_required` rounds as real requests, at most `MAX_INPUT_ROUNDS`.
- One identity in both eras: the client's server is Bastion, whatever answered upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Final

from bastion import __version__
from bastion.errors import (
    BastionError,
    Cancelled,
    Denied,
    InvalidParams,
    InvalidRequest,
    Reason,
    error_from_exception,
    error_response,
)
from bastion.pipeline import refusals
from bastion.pipeline.context import CURRENT_EXCHANGE
from bastion.pipeline.exchange import Exchange
from bastion.protocol import jsonrpc, versions
from bastion.protocol.methods import CLIENT_REQUESTS, LIST_KEYS, Route
from bastion.protocol.session import SUBSCRIPTION_METHODS, Era
from bastion.routing.parked import AskItem, ParkedCall
from bastion.transports.base import JsonDict, RequestId

if TYPE_CHECKING:
    from bastion.core.ports import SessionHost as Gateway
    from bastion.core.session import DownstreamSession

logger = logging.getLogger("bastion.session")

SERVER_INFO: Final = {"name": "bastion", "version": __version__}
"""Bastion's identity: the one server a client sees, in both eras, whatever answered upstream."""
MAX_INPUT_ROUNDS: Final = 8
"""Rounds of 2026-07-28 `input_required` bridged for a handshake-era client before giving up."""
_MODERN_ONLY_RESULT_KEYS: Final = ("resultType", "ttlMs", "cacheScope")

Work = Coroutine[Any, Any, JsonDict]
_NO_SPAN: Final = contextlib.nullcontext()


class SessionCalls:
    """The routed requests of one `DownstreamSession`, and the exchanges they are audited as."""

    def __init__(self, session: DownstreamSession, gateway: Gateway) -> None:
        self._session = session
        self._gateway = gateway
        self._exchanges: dict[RequestId, Exchange] = {}
        """Exchanges in flight, so relayed server->client traffic knows its upstream (for guardrail overrides)."""
        self._input_slots: dict[RequestId, asyncio.Queue[AskItem]] = {}
        """2026-07-28 calls to handshake-era upstreams: where their server->client requests become rounds. A slot
        outlives its downstream request: the parked upstream call may ask again after `input_required` went out."""

    def input_slot(self, related: RequestId | None) -> asyncio.Queue[AskItem] | None:
        """Where a server->client request during call `related` goes when that call bridges to `input_required`."""
        return self._input_slots.get(related) if related is not None else None

    def server_of(self, related: RequestId | None) -> str | None:
        """The upstream serving this session's request `related`, while it is in flight."""
        exchange = self._exchanges.get(related) if related is not None else None
        return exchange.server if exchange is not None else None

    # -- observing ---------------------------------------------------------------------------------------------

    def _exchange(self, method: str, params: JsonDict, request_id: RequestId) -> Exchange:
        exchange = Exchange(session=self._session.info, method=method, params=params, request_id=request_id)
        exchange.asker = functools.partial(self._ask, exchange)
        self._exchanges[request_id] = exchange
        return exchange

    async def observe_local(
        self, method: str, params: JsonDict, request_id: RequestId, reply: JsonDict
    ) -> JsonDict:
        """Observe a request Bastion answered itself (handshake, ping, refusals before any routing), so every
        request that crosses the gateway is an audit event; strict audit may withhold it."""
        exchange = self._exchange(method, params, request_id)
        error = reply.get("error")
        if isinstance(error, dict):
            exchange.error, exchange.outcome = error, "error"
        else:
            exchange.result = jsonrpc.as_dict(reply.get("result"))
        try:
            await self._gateway.observe(exchange)
        except BastionError as exc:
            return error_response(request_id, exc)
        return reply

    async def _observed(self, exchange: Exchange, work: Work, *, modern: bool = False) -> JsonDict:
        """Await `work`, then let every observer (audit first) see the exchange before the reply is released.

        One coroutine around the work, not a wrapper per concern: every level of a coroutine chain is resumed
        again at each suspension of the call, so the hot path keeps the chain short.
        """
        CURRENT_EXCHANGE.set(exchange)  # log lines carry its ids; this task serves only this request
        tracer = self._gateway.pipeline.tracer
        failure: BastionError | None = None
        reply: JsonDict = {}
        try:
            with _NO_SPAN if tracer is None else tracer.request_span(exchange):
                try:
                    reply = await work
                except asyncio.CancelledError:
                    exchange.outcome = "cancelled"
                    exchange.error = error_response(exchange.request_id, Cancelled("cancelled"))["error"]
                    with contextlib.suppress(Exception):
                        await asyncio.shield(self._gateway.observe(exchange))
                    raise
                except Exception as exc:  # observed whatever happened; re-raised below once audit has seen it
                    failure = error_from_exception(exc)
                    if not isinstance(exc, BastionError):
                        logger.exception(
                            "session %s: %s failed", self._session.session_id[:8], exchange.method
                        )
                    exchange.error = error_response(exchange.request_id, exc)["error"]
                    if exchange.outcome in ("allow", "flag", "redact"):
                        exchange.outcome = "error"
                await self._gateway.observe(exchange)  # strict audit raises here: the reply is withheld
                if failure is not None:
                    raise failure
        finally:
            self._exchanges.pop(exchange.request_id, None)
        if modern and "result" in reply:
            reply["result"] = modern_result(exchange.method, reply["result"])
        return reply

    def _refused(self, exchange: Exchange, error: BastionError) -> JsonDict:
        """A refusal as the client gets it: an `isError` result when `refusals: result` allows, else the error."""
        refusal = refusals.refusal_result(exchange, error, self._gateway.config.refusals)
        if refusal is None:
            raise error
        exchange.error = error_response(exchange.request_id, error)[
            "error"
        ]  # audited, whatever the client sees
        exchange.result = refusal
        return {"result": refusal}

    # -- lists ---------------------------------------------------------------------------------------------------

    def list(self, method: str, params: JsonDict, request_id: RequestId, era: Era) -> Work:
        """A list aggregated over the upstreams this principal may see, filtered, through the pipeline."""
        if params.get("cursor") is not None:
            raise InvalidParams("Invalid cursor")  # Bastion serves every list as one page: no cursor is valid
        exchange = self._exchange(method, params, request_id)
        return self._observed(exchange, self._list(exchange), modern=era is Era.MODERN)

    async def _list(self, exchange: Exchange) -> JsonDict:
        gateway, method = self._gateway, exchange.method
        error = await gateway.pipeline.run_request(exchange)
        if error is not None:
            raise error
        items = await gateway.catalog.aggregate(method)
        if gateway.config.routing.capability_aware_lists:
            items = gateway.needs.filter(method, items, self._session.info.client_capabilities, self._locate)
        exchange.result = {LIST_KEYS[method]: items}
        error = await gateway.pipeline.run_response(exchange)
        if error is not None:
            raise error
        self._session.state.listed(method)
        return {"result": exchange.result}

    def _locate(self, public: str) -> tuple[str, str] | None:
        """Where a listed name lives: (server, its own name); a resource URI is its own name."""
        catalog = self._gateway.catalog
        if "://" in public:
            server = catalog.server_of_uri(public)
            return (server, public) if server is not None else None
        return catalog.split_name(public)

    # -- logging/setLevel ----------------------------------------------------------------------------------------

    def set_log_level(self, params: JsonDict, request_id: RequestId) -> Work:
        """`logging/setLevel` for this session only: through the pipeline (policy, audit), then its own scopes."""
        level = self._session.state.check_log_level(params.get("level"))
        exchange = self._exchange("logging/setLevel", params, request_id)
        return self._observed(exchange, self._set_log_level(exchange, level))

    async def _set_log_level(self, exchange: Exchange, level: str) -> JsonDict:
        error = await self._gateway.pipeline.run_request(exchange)
        if error is not None:
            raise error
        self._session.state.set_log_level(level)
        await self._gateway.set_log_level(self._session, level)
        exchange.result = {}
        return {"result": {}}

    # -- calls ---------------------------------------------------------------------------------------------------

    def call(
        self, method: str, params: JsonDict, request_id: RequestId, era: Era, *, route: Route | None = None
    ) -> Work:
        """A routed call: resolve its upstream, the request path, the upstream, the response path in reverse."""
        exchange = self._exchange(method, params, request_id)
        work = self._call(exchange, route or CLIENT_REQUESTS[method], era)
        return self._observed(exchange, work, modern=era is Era.MODERN)

    async def _call(self, exchange: Exchange, route: Route, era: Era) -> JsonDict:
        session, gateway, modern = self._session, self._gateway, era is Era.MODERN
        method, params, request_id = exchange.method, exchange.params, exchange.request_id
        server, target = await self._resolve(route, method, params)
        exchange.server, exchange.target = server, target
        if target is not None:
            session.state.target(request_id, server, target)
        error = await gateway.pipeline.run_request(exchange)
        if error is not None:
            return self._refused(exchange, error)
        upstream_params = _upstream_params(route, exchange.params, target, modern)
        handshake_only = session.state.needs_handshake_era(method, era, session.info.client_capabilities)
        conn = await gateway.pool.acquire(server, session, handshake_only=handshake_only)
        if route is Route.TOOL and conn.allowed_tools is not None and target not in conn.allowed_tools:
            # This scope's own process serves another definition, held by the pins check: no oracle.
            raise InvalidParams(f"Unknown tool: {params.get('name')}")
        started = time.perf_counter()
        try:
            if modern and not conn.modern:
                reply = await self._call_for_modern_client(
                    conn, method, upstream_params, params, request_id, conn.timeout_for(method, target)
                )
            else:
                reply = await conn.request(
                    method,
                    upstream_params,
                    owner=session,
                    downstream_id=request_id,
                    timeout=conn.timeout_for(method, target),
                    client_capabilities=session.info.client_capabilities,
                )
            if conn.modern and not modern:
                reply = await self._bridge_input_required(conn, method, upstream_params, reply, request_id)
        finally:
            exchange.upstream_seconds = time.perf_counter() - started
        if "error" in reply:
            allowed, error_body = await gateway.screen_channel("error", server, reply["error"], method)
            if not allowed:
                exchange.outcome = "deny"  # audited as a refusal, like a blocked result
                raise Denied(
                    "Blocked by Bastion guardrails (error of the upstream)",
                    reason=Reason.GUARDRAIL_BLOCKED,
                )
            exchange.error = error_body
            exchange.outcome = "error"
            return {"error": error_body}
        result = reply.get("result")
        exchange.result = result if isinstance(result, dict) else {}
        error = await gateway.pipeline.run_response(exchange)
        if error is not None:
            return self._refused(exchange, error)
        result = exchange.result
        if conn.modern and not modern:
            result = {k: v for k, v in result.items() if k not in _MODERN_ONLY_RESULT_KEYS}
        if not modern and isinstance(meta := result.get("_meta"), dict) and versions.META_SERVER_INFO in meta:
            result = {**result, "_meta": {**meta, versions.META_SERVER_INFO: SERVER_INFO}}
        if isinstance(task := result.get("task"), dict) and isinstance(task.get("taskId"), str):
            gateway.catalog.remember_task(task["taskId"], server)
        if method in SUBSCRIPTION_METHODS:
            session.state.after_call(method, params)
        return {"result": result}

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

    # -- bridges between eras ------------------------------------------------------------------------------------

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
        principal = self._session.info.principal.name
        if "requestState" in params:
            parked = lot.take(params["requestState"], principal)
            lot.answer(parked, params.get("inputResponses"))
            return await lot.wait(parked)
        upstream_params = {
            k: v for k, v in upstream_params.items() if k not in ("inputResponses", "requestState")
        }
        asks: asyncio.Queue[AskItem] = asyncio.Queue()
        self._input_slots[request_id] = asks
        task = asyncio.ensure_future(
            conn.request(
                method, upstream_params, owner=self._session, downstream_id=request_id, timeout=timeout
            )
        )
        call = ParkedCall(task=task, asks=asks, principal=principal)
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
                answer = await self._session.relay_request(
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
                owner=self._session,
                downstream_id=request_id,
                client_capabilities=self._session.info.client_capabilities,
            )
        return error_response(request_id, InvalidRequest("too many input rounds"))

    # -- asking a human ------------------------------------------------------------------------------------------

    async def _ask(self, exchange: Exchange, question: str) -> bool:
        """Ask a human: an operator (the approvals queue) unless the rule opted into asking this client's user.

        The client is the agent under check: its answer is user consent, never operator approval, so it is asked
        only where a rule says so (`ask_client`) and it can show a form; otherwise an operator decides.
        """
        session = self._session
        elicitation = session.info.client_capabilities.get("elicitation")
        can_elicit = isinstance(elicitation, dict) and (not elicitation or "form" in elicitation)
        if not exchange.ask_client or session.stateless or not can_elicit:
            queue = self._gateway.approval_asker(session, exchange)
            return queue is not None and await queue(question)
        schema = {
            "type": "object",
            "required": ["approve"],
            "properties": {"approve": {"type": "boolean", "title": "Approve this call?"}},
        }
        answer = await session.relay_request(
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


def modern_result(method: str, result: JsonDict) -> JsonDict:
    """A result as a 2026-07-28 client gets it: `resultType`, list caching hints, and Bastion as its server."""
    extra: JsonDict = {}
    if "resultType" not in result:
        extra["resultType"] = "complete"
    if (method in LIST_KEYS or method == "resources/read") and "ttlMs" not in result:
        extra["ttlMs"] = 0
        extra["cacheScope"] = "private"  # filtered per principal, so never shareable
    meta = result.get("_meta")
    meta = meta if isinstance(meta, dict) else {}
    if meta.get(versions.META_SERVER_INFO) is not SERVER_INFO:
        # The client's server is Bastion, whatever upstream answered.
        extra["_meta"] = {**meta, versions.META_SERVER_INFO: SERVER_INFO}
    return {**result, **extra} if extra else result


def _upstream_params(route: Route, params: JsonDict, target: str | None, modern: bool) -> JsonDict:
    """The params as the upstream gets them: its own item name, and only the envelope members of this hop."""
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
