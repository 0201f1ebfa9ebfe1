"""The admin JSON API under `/api`: one route table, from which both the Starlette routes and OpenAPI are built.

Rules:
- Every route sits behind `AdminGate` (admins only; bearer or session cookie with CSRF protection).
- Handlers call `AdminService` and return JSON; invalid input is a 400 naming the field, an unknown id a 404.
- The live feed is Server-Sent Events: `call`, `notice` and `approval` events; a reader too slow to keep up gets a
  `resync` event and the stream ends (the browser reconnects with `Last-Event-ID` and is replayed from the buffer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bastion.auth.apikeys import parse_duration
from bastion.errors import InvalidRequest, http_error
from bastion.types import Principal
from bastion.web.adapters import AuditFilters
from bastion.web.feed import FILTER_KEYS, LiveFeed
from bastion.web.service import AdminService, InvalidInput

KEEPALIVE_SECONDS: Final = 15.0
"""Seconds between SSE comments on an idle stream (keeps proxies from closing it)."""
MAX_PAGE: Final = 1000
"""Largest `limit` a listing accepts."""

Handler = Callable[[Request, AdminService], Awaitable[Response]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Param:
    """A path or query parameter, for validation messages and OpenAPI."""

    name: str
    where: str = "query"
    type: str = "string"
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """One admin API route: how it is served and how it is documented."""

    method: str
    path: str
    """Path below `/api`, in OpenAPI template form (`/approvals/{approval_id}/approve`)."""
    handler: Handler
    summary: str
    tag: str
    params: tuple[Param, ...] = ()
    body: str | None = None
    """Name of the request body schema in `components.schemas`."""
    body_optional: bool = False
    response: str | None = None
    """Name of the success response schema; None for non-JSON bodies."""
    media_type: str = "application/json"
    status: int = 200

    @property
    def operation_id(self) -> str:
        words = [w for w in self.path.replace("{", "").replace("}", "").replace("-", "_").split("/") if w]
        return self.method.lower() + "_" + "_".join(words or ["root"])


def _principal(request: Request) -> Principal:
    principal: Principal = request.scope["state"]["principal"]
    return principal


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status_code=status, media_type="application/json"
    )


def _problem(status: int, error: str, description: str) -> Response:
    answer = http_error(InvalidRequest(description), status=status, problem=(error, description))
    return Response(answer.body, status_code=answer.status, media_type="application/json")


def _int(request: Request, name: str, default: int, *, low: int = 0, high: int = MAX_PAGE) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}")
    return value


def _float(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number (epoch seconds)") from None


def feed_filters(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "") for k in FILTER_KEYS}


def audit_filters(request: Request, *, limit_cap: int = MAX_PAGE) -> AuditFilters:
    q = request.query_params
    return AuditFilters(
        principal=q.get("principal", ""),
        server=q.get("server", ""),
        tool=q.get("tool", ""),
        outcome=q.get("outcome", ""),
        kind=q.get("kind", ""),
        since=_float(request, "since"),
        until=_float(request, "until"),
        limit=_int(request, "limit", 100, low=1, high=limit_cap),
        offset=_int(request, "offset", 0, high=10_000_000),
    )


async def _body(request: Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise InvalidInput("the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise InvalidInput("the body must be a JSON object")
    return data


def _strings(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise InvalidInput(f"{name} must be a list of strings")


# -- handlers ------------------------------------------------------------------------------------------------


async def session_info(request: Request, service: AdminService) -> Response:
    principal = _principal(request)
    ui_session = request.scope["state"].get("ui_session")
    return _json(
        {
            "principal": principal.name,
            "roles": sorted(principal.roles),
            "method": principal.method,
            "via": "session" if ui_session is not None else "bearer",
            "expires": ui_session.expires if ui_session is not None else None,
        }
    )


async def overview(request: Request, service: AdminService) -> Response:
    return _json(await service.overview())


async def health(request: Request, service: AdminService) -> Response:
    return _json(service.gateway.health())


async def feed(request: Request, service: AdminService) -> Response:
    after = _int(request, "after", 0, high=2**62)
    items = service.feed.recent(feed_filters(request), after=after, limit=_int(request, "limit", 200, low=1))
    return _json({"items": [i.summary() for i in items]})


async def feed_stream(request: Request, service: AdminService) -> Response:
    last = request.headers.get("last-event-id", "")
    after = int(last) if last.isdigit() else None
    return StreamingResponse(
        sse_events(service.feed, feed_filters(request), after=after),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


def _sse(name: str, data: dict[str, Any], seq: int | None = None) -> bytes:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


async def sse_events(
    live: LiveFeed, filters: dict[str, str], *, after: int | None, keepalive: float = KEEPALIVE_SECONDS
) -> AsyncIterator[bytes]:
    """The SSE byte stream of one subscriber: replay after `after` (a reconnect), then live events."""
    subscription = live.subscribe(filters)
    try:
        yield b"retry: 3000\n\n"
        sent = 0
        if after is not None:
            for item in reversed(live.recent(filters, after=after, limit=live.capacity)):
                sent = item.seq
                yield _sse("call" if item.is_call else "notice", item.summary(), item.seq)
        while True:
            batch = await subscription.next(keepalive)
            if subscription.closed:
                return  # the server is shutting down
            if subscription.dropped:
                yield _sse("resync", {"reason": "too slow"})
                return
            if not batch:
                yield b": keep-alive\n\n"
                continue
            for name, data in batch:
                seq = data.get("seq") if name in ("call", "notice") else None
                if isinstance(seq, int):
                    if seq <= sent:
                        continue  # already replayed
                    sent = seq
                yield _sse(name, data, seq if isinstance(seq, int) else None)
    finally:
        live.unsubscribe(subscription)


async def event(request: Request, service: AdminService) -> Response:
    found = await service.event(request.path_params["event_id"])
    return _json(found) if found is not None else _problem(404, "not_found", "no such event")


async def servers(request: Request, service: AdminService) -> Response:
    return _json({"servers": await service.servers()})


async def session_taint(request: Request, service: AdminService) -> Response:
    return _json(await service.session_taint(request.path_params["session_id"]))


async def tool_changes(request: Request, service: AdminService) -> Response:
    return _json({"enabled": service.pins is not None, "changes": await service.tool_changes()})


async def _decide_tool(request: Request, service: AdminService, approve: bool) -> Response:
    server, tool = request.path_params["server"], request.path_params["tool"]
    body = await _body(request) if await request.body() else {}
    reviewed = body.get("pending_hash")
    if reviewed is not None and not isinstance(reviewed, str):
        raise InvalidInput("pending_hash must be a string")
    if not await service.decide_tool(
        server, tool, approve=approve, by=_principal(request), pending_hash=reviewed
    ):
        return _problem(404, "not_found", "no changed definition is waiting for that tool")
    return _json({"server": server, "tool": tool, "decision": "approved" if approve else "rejected"})


async def approve_tool(request: Request, service: AdminService) -> Response:
    return await _decide_tool(request, service, True)


async def reject_tool(request: Request, service: AdminService) -> Response:
    return await _decide_tool(request, service, False)


async def approvals(request: Request, service: AdminService) -> Response:
    return _json({"pending": await service.approvals()})


async def _answer(request: Request, service: AdminService, approved: bool) -> Response:
    approval_id = request.path_params["approval_id"]
    if not await service.resolve_approval(approval_id, approved=approved, by=_principal(request)):
        return _problem(404, "not_found", "no such pending approval (answered, timed out or unknown)")
    return _json({"id": approval_id, "approved": approved})


async def approve_call(request: Request, service: AdminService) -> Response:
    return await _answer(request, service, True)


async def deny_call(request: Request, service: AdminService) -> Response:
    return await _answer(request, service, False)


async def policy(request: Request, service: AdminService) -> Response:
    return _json(service.policy())


async def policy_test(request: Request, service: AdminService) -> Response:
    body = await _body(request)
    report = service.test_policy(
        principal=str(body.get("principal", "")),
        roles=_strings(body.get("roles"), "roles"),
        kind=str(body.get("kind", "tool")),
        name=str(body.get("name", "")),
        server=str(body.get("server", "")),
        args=body.get("args"),
    )
    return _json(report)


async def principals(request: Request, service: AdminService) -> Response:
    return _json({"principals": await service.principals(), "admin_role": service.config.admin_role})


async def keys(request: Request, service: AdminService) -> Response:
    return _json({"keys": await service.keys()})


async def create_key(request: Request, service: AdminService) -> Response:
    body = await _body(request)
    expires = body.get("expires_in")
    try:
        expires_in = parse_duration(str(expires)) if expires not in (None, "") else None
    except ValueError:
        raise InvalidInput("expires_in must be a duration such as 30d, 12h or 15m") from None
    key, info = await service.create_key(
        str(body.get("principal", "")),
        _strings(body.get("roles"), "roles"),
        expires_in=expires_in,
        by=_principal(request),
    )
    return _json({"key": key, "info": info.to_dict()}, status=201)


async def revoke_key(request: Request, service: AdminService) -> Response:
    key_id = request.path_params["key_id"]
    if not await service.revoke_key(key_id, by=_principal(request)):
        return _problem(404, "not_found", "no such key")
    return _json({"id": key_id, "revoked": True})


async def audit_search(request: Request, service: AdminService) -> Response:
    filters = audit_filters(request)
    return _json(
        {
            "source": service.audit.name,
            "durable": service.audit.durable,
            "events": await service.audit.search(filters),
        }
    )


async def audit_export(request: Request, service: AdminService) -> Response:
    fmt = request.query_params.get("format", "jsonl")
    filters = audit_filters(request, limit_cap=service.config.export_limit)
    if "limit" not in request.query_params:
        filters = dataclasses.replace(filters, limit=service.config.export_limit)
    body, media_type = await service.export(filters, fmt)
    name = f"bastion-audit.{'csv' if fmt == 'csv' else 'jsonl'}"
    return Response(
        body, media_type=media_type, headers={"content-disposition": f'attachment; filename="{name}"'}
    )


async def audit_verify(request: Request, service: AdminService) -> Response:
    reports = await service.audit.verify()
    return _json(
        {
            "available": service.audit.durable,
            "ok": bool(reports) and all(r.get("ok") for r in reports),
            "chains": reports,
        }
    )


_FEED_PARAMS = tuple(Param(name=n, description=f"only items whose {n} is exactly this") for n in FILTER_KEYS)
_AUDIT_PARAMS = (
    *_FEED_PARAMS,
    Param(name="since", type="number", description="epoch seconds, inclusive"),
    Param(name="until", type="number", description="epoch seconds, exclusive"),
    Param(name="limit", type="integer", description="most events returned"),
    Param(name="offset", type="integer", description="events skipped (paging)"),
)

OPERATIONS: Final = (
    Operation(method="GET", path="/session", handler=session_info, summary="Who is calling", tag="session",
              response="Session"),
    Operation(method="GET", path="/sessions/{session_id}/taint", handler=session_taint, tag="session",
              response="SessionTaint", params=(Param(name="session_id", where="path"),),
              summary="A client session's flow taint: what tainted it (tool, time, finding kinds, event)"),
    Operation(method="GET", path="/overview", handler=overview, tag="overview", response="Overview",
              summary="Calls, denials and findings per minute, top tools and principals, health, alerts"),
    Operation(method="GET", path="/health", handler=health, tag="overview", response="Health",
              summary="Upstream states (no configuration values)"),
    Operation(method="GET", path="/feed", handler=feed, tag="live", response="FeedPage",
              summary="Recent calls and notices, newest first",
              params=(*_FEED_PARAMS, Param(name="after", type="integer", description="only after this seq"),
                      Param(name="limit", type="integer", description="most items returned"))),
    Operation(method="GET", path="/feed/stream", handler=feed_stream, tag="live", media_type="text/event-stream",
              summary="Live calls, notices and approvals as Server-Sent Events", params=_FEED_PARAMS),
    Operation(method="GET", path="/events/{event_id}", handler=event, tag="audit", response="AuditEvent",
              summary="One full audit event", params=(Param(name="event_id", where="path"),)),
    Operation(method="GET", path="/servers", handler=servers, tag="servers", response="Servers",
              summary="Every upstream with its state, tools and pinned definitions"),
    Operation(method="GET", path="/tool-changes", handler=tool_changes, tag="servers", response="ToolChanges",
              summary="Changed (rug-pulled) or new tool definitions waiting for a decision"),
    Operation(method="POST", path="/tool-changes/{server}/{tool}/approve", handler=approve_tool, tag="servers",
              response="ToolDecision", body="ToolDecisionRequest", body_optional=True, summary="Accept the changed definition as the new pin",
              params=(Param(name="server", where="path"), Param(name="tool", where="path"))),
    Operation(method="POST", path="/tool-changes/{server}/{tool}/reject", handler=reject_tool, tag="servers",
              response="ToolDecision", summary="Keep the old pin; the changed tool stays blocked",
              params=(Param(name="server", where="path"), Param(name="tool", where="path"))),
    Operation(method="GET", path="/approvals", handler=approvals, tag="approvals", response="Approvals",
              summary="Calls waiting for a human"),
    Operation(method="POST", path="/approvals/{approval_id}/approve", handler=approve_call, tag="approvals",
              response="ApprovalAnswer", summary="Let a held call proceed",
              params=(Param(name="approval_id", where="path"),)),
    Operation(method="POST", path="/approvals/{approval_id}/deny", handler=deny_call, tag="approvals",
              response="ApprovalAnswer", summary="Refuse a held call",
              params=(Param(name="approval_id", where="path"),)),
    Operation(method="GET", path="/policy", handler=policy, tag="policy", response="Policy",
              summary="The policy in force"),
    Operation(method="POST", path="/policy/test", handler=policy_test, tag="policy", body="PolicyTest",
              response="PolicyDecision", summary="Would this call be allowed? (same engine as `bastion policy test`)"),
    Operation(method="GET", path="/principals", handler=principals, tag="policy", response="Principals",
              summary="Principals and the roles they hold"),
    Operation(method="GET", path="/keys", handler=keys, tag="keys", response="Keys",
              summary="API keys (ids and metadata, never secrets)"),
    Operation(method="POST", path="/keys", handler=create_key, tag="keys", body="KeyCreate", response="KeyCreated",
              status=201, summary="Create an API key; the key is in this response only"),
    Operation(method="POST", path="/keys/{key_id}/revoke", handler=revoke_key, tag="keys", response="KeyRevoked",
              summary="Revoke an API key", params=(Param(name="key_id", where="path"),)),
    Operation(method="GET", path="/audit", handler=audit_search, tag="audit", response="AuditPage",
              summary="Search the audit trail, newest first", params=_AUDIT_PARAMS),
    Operation(method="GET", path="/audit/export", handler=audit_export, tag="audit", media_type="application/x-ndjson",
              summary="Export matching audit events as JSON Lines or CSV",
              params=(*_AUDIT_PARAMS, Param(name="format", description="jsonl (default) or csv"))),
    Operation(method="GET", path="/audit/verify", handler=audit_verify, tag="audit", response="Verification",
              summary="Verify the audit hash chains"),
)  # fmt: skip
"""The admin API. `openapi.py` documents exactly these."""


def api_routes(service: AdminService, openapi: Callable[[], dict[str, Any]]) -> list[Route]:
    """Starlette routes for `OPERATIONS` (paths relative to the `/api` mount) plus `/openapi.json`."""

    def bind(op: Operation) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await op.handler(request, service)
            except InvalidInput as exc:
                return _problem(400, "invalid_request", str(exc))

        return endpoint

    async def document(_request: Request) -> Response:
        return _json(openapi())

    routes = [Route("/openapi.json", document, methods=["GET"])]
    by_path: dict[str, dict[str, Operation]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.path, {})[op.method] = op
    for path, ops in by_path.items():
        handlers = {m: bind(o) for m, o in ops.items()}

        async def dispatch(request: Request, _h: dict[str, Any] = handlers) -> Response:
            endpoint: Callable[[Request], Awaitable[Response]] = _h[
                "GET" if request.method == "HEAD" else request.method
            ]
            return await endpoint(request)

        routes.append(Route(path, dispatch, methods=list(ops)))
    return routes
