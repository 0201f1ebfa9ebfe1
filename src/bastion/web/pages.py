"""The dashboard's HTML pages under `/ui`: server-rendered, plain forms (post, then redirect), a little script.

Rules:
- Every page but the login page sits behind `AdminGate`; every form carries the session's CSRF token.
- Outcome messages after a form post are fixed texts chosen by a code in the redirect, never echoed input.
- The login page accepts an API key or an access token (JWT) once, checks it exactly as the MCP endpoints do,
  requires the admin role, and keeps only a session id in the cookie (see `sessions.py`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode

import orjson
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bastion.auth.authenticator import Authenticator
from bastion.auth.failures import credential_facts, failure_of
from bastion.errors import AuthError
from bastion.types import Principal
from bastion.web import charts
from bastion.web.adapters import AuditFilters
from bastion.web.api import MAX_PAGE, audit_filters, feed_filters
from bastion.web.config import UIConfig
from bastion.web.gate import FailureHook, RolesOf, same_origin, with_security_headers
from bastion.web.service import AdminService, InvalidInput
from bastion.web.sessions import COOKIE_NAME, UISession, UISessions

if TYPE_CHECKING:
    from jinja2 import Environment

MAX_LOGIN_BYTES: Final = 16 * 1024
"""Largest login form accepted (a JWT is a few kilobytes)."""
OUTCOMES: Final = ("allow", "deny", "flag", "redact", "error", "cancelled")
WINDOWS: Final = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400, "all": 0}
"""Time windows offered by the audit search form, in seconds (0: no bound)."""
MESSAGES: Final = {
    "approved": "The call was approved and continues.",
    "denied": "The call was denied.",
    "gone": "That approval is no longer pending (answered elsewhere or timed out).",
    "tool-approved": "The new tool definition is now the pin.",
    "tool-rejected": "The change was rejected; the old pin stays in force.",
    "tool-gone": "No change is waiting for that tool.",
    "revoked": "The key was revoked.",
    "unknown-key": "No such key.",
    "logged-out": "You are logged out.",
}
NAV: Final = (
    ("live", "Live"),
    ("overview", "Overview"),
    ("servers", "Servers and tools"),
    ("approvals", "Approvals"),
    ("policies", "Policies and principals"),
    ("audit", "Audit"),
)


def safe_next(target: str | None) -> str:
    """Where to go after login: only a dashboard path, never another site (`//evil`, `/\\evil`)."""
    if not target or not target.startswith("/ui/") or target.startswith(("//", "/\\")) or "\\" in target:
        return "/ui/live"
    return target


class Pages:
    """Builds the page routes around one `AdminService`."""

    def __init__(
        self,
        service: AdminService,
        *,
        env: Callable[[], Environment],
        config: UIConfig,
        sessions: UISessions,
        authenticator: Authenticator,
        roles_of: Callable[[], RolesOf],
        allowed_origins: tuple[str, ...] = (),
        on_failure: FailureHook | None = None,
    ) -> None:
        self.service = service
        self._make_env = env
        self._env: Environment | None = None
        self.config = config
        self.sessions = sessions
        self.authenticator = authenticator
        self._roles_of = roles_of
        self.allowed_origins = allowed_origins
        self._on_failure = on_failure

    # -- rendering --------------------------------------------------------------------------------------------

    @property
    def env(self) -> Environment:
        """The template environment, made on the first render: a gateway whose dashboard is never opened never
        imports Jinja2 (about 2 MB of RSS)."""
        if self._env is None:
            self._env = self._make_env()
        return self._env

    def render(self, request: Request | None, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        session: UISession | None = request.scope.get("state", {}).get("ui_session") if request else None
        message = MESSAGES.get(request.query_params.get("msg", "")) if request else None
        html = self.env.get_template(name).render(
            page=context.pop("page", ""),
            nav=NAV,
            principal=session.principal if session else "",
            csrf=session.csrf if session else "",
            message=message,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    async def forbidden(self, scope: Scope, receive: Receive, send: Send, principal: Principal) -> None:
        """The 403 page for a logged-in principal that lost the admin role."""
        response = self.render(None, "error.html", 403, title="Forbidden", who=principal.name,
                               text=f"This page needs the {self.config.admin_role} role.")  # fmt: skip
        await response(scope, receive, with_security_headers(send))

    # -- login ------------------------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        target = safe_next(request.query_params.get("next"))
        if request.method == "GET":
            return self._secured(self.render(request, "login.html", next=target, error=""))
        if not same_origin(request.scope, self.allowed_origins):
            return self._secured(
                self.render(request, "login.html", 403, next=target, error="Cross-site login refused.")
            )
        if int(request.headers.get("content-length") or 0) > MAX_LOGIN_BYTES:
            return self._secured(self.render(request, "login.html", 413, next=target, error="Too large."))
        form = await request.form()
        credential = str(form.get("credential") or "").strip()
        target = safe_next(str(form.get("next") or target))
        refused = (
            "This credential is not valid for the dashboard (unknown, expired, revoked, or not an admin)."
        )
        if not credential or any(c.isspace() for c in credential):
            return self._secured(self.render(request, "login.html", 401, next=target, error=refused))
        try:
            principal = await self.authenticator.authenticate({"authorization": f"Bearer {credential}"})
        except AuthError as exc:
            self._report(request, str(failure_of(exc)), credential_facts(exc))
            return self._secured(self.render(request, "login.html", 401, next=target, error=refused))
        if self.config.admin_role not in self._roles_of()(principal):
            self._report(request, "not_admin")
            return self._secured(self.render(request, "login.html", 403, next=target, error=refused))
        token, session = await self.sessions.create(principal, not_after=_token_expiry(principal, credential))
        response = RedirectResponse(target, status_code=303)
        secure = self.config.cookie_secure
        response.set_cookie(
            COOKIE_NAME, token, max_age=max(1, int(session.expires - session.created)), path="/", httponly=True,
            samesite="strict", secure=request.url.scheme == "https" if secure is None else secure,
        )  # fmt: skip
        return self._secured(response)

    def _report(self, request: Request, reason: str, facts: Mapping[str, Any] | None = None) -> None:
        if self._on_failure is not None:
            self._on_failure(reason, request.client.host if request.client else "", request.url.path, facts)

    async def logout(self, request: Request) -> Response:
        await self.sessions.end(request.cookies.get(COOKIE_NAME))
        response = RedirectResponse("/ui/login?msg=logged-out", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    @staticmethod
    def _secured(response: Response) -> Response:
        for key, value in (
            ("content-security-policy", "default-src 'self'; script-src 'self'; style-src 'self'; "
             "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"),
            ("x-frame-options", "DENY"), ("x-content-type-options", "nosniff"),
            ("referrer-policy", "same-origin"), ("cache-control", "no-store"),
        ):  # fmt: skip
            response.headers[key] = value
        return response

    # -- pages ------------------------------------------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/ui/live", status_code=303)

    async def live(self, request: Request) -> Response:
        filters = feed_filters(request)
        items = self.service.feed.recent(filters, limit=100)
        return self.render(request, "live.html", page="live", filters=filters, outcomes=OUTCOMES,
                           rows=[i.summary() for i in items], stream_query=urlencode({k: v for k, v in filters.items() if v}))  # fmt: skip

    async def event(self, request: Request) -> Response:
        event_id = request.path_params["event_id"]
        event = await self.service.event(event_id)
        if event is None:
            return self.render(request, "error.html", 404, title="Not found", who="",
                               text="No such event (it may have left the live buffer before audit stored it).")  # fmt: skip
        findings = [
            {**f, "stage": d.get("stage"), "phase": d.get("phase")}
            for d in event.get("decisions") or ()
            for f in d.get("findings") or ()
        ]
        highlights = [str(f.get("path")) for f in findings if f.get("phase") == "request"]
        chain = {k: event.get(k) for k in ("replica", "seq", "prev_hash", "hash") if event.get(k)}
        return self.render(request, "event.html", page="live", event=event, findings=findings,
                           highlights=highlights, chain=chain)  # fmt: skip

    async def session(self, request: Request) -> Response:
        taint = await self.service.session_taint(request.path_params["session_id"])
        return self.render(request, "session.html", page="live", taint=taint)

    async def overview(self, request: Request) -> Response:
        data = await self.service.overview()
        return self.render(
            request, "overview.html", page="overview", data=data,
            series_chart=charts.time_series(data["series"], chart_id="series",
                                            title="Calls, denials and findings per minute"),
            legend=charts.legend(),
            tools_chart=charts.bars(data["top_tools"], chart_id="tools", title="Top tools by calls"),
            principals_chart=charts.bars(data["top_principals"], chart_id="principals",
                                         title="Top principals by calls"),
        )  # fmt: skip

    async def servers(self, request: Request) -> Response:
        return self.render(request, "servers.html", page="servers", servers=await self.service.servers(),
                           pinning=self.service.pins is not None,
                           changes=await self.service.tool_changes())  # fmt: skip

    async def decide_tool(self, request: Request) -> Response:
        approve = request.path_params["decision"] == "approve"
        server, tool = request.path_params["server"], request.path_params["tool"]
        principal: Principal = request.scope["state"]["principal"]
        form = await request.form()
        reviewed = str(form.get("pending_hash") or "") or None
        done = await self.service.decide_tool(
            server, tool, approve=approve, by=principal, pending_hash=reviewed
        )
        code = ("tool-approved" if approve else "tool-rejected") if done else "tool-gone"
        return RedirectResponse(f"/ui/servers?msg={code}", status_code=303)

    async def approvals(self, request: Request) -> Response:
        pending = await self.service.approvals()
        now = time.time()
        return self.render(request, "approvals.html", page="approvals", pending=pending, now=now,
                           timeout=self.service.gateway.approvals.timeout)  # fmt: skip

    async def answer(self, request: Request) -> Response:
        approved = request.path_params["decision"] == "approve"
        principal: Principal = request.scope["state"]["principal"]
        done = await self.service.resolve_approval(
            request.path_params["approval_id"], approved=approved, by=principal
        )
        code = ("approved" if approved else "denied") if done else "gone"
        return RedirectResponse(f"/ui/approvals?msg={code}", status_code=303)

    async def policies(self, request: Request, *, status: int = 200, **extra: Any) -> Response:
        context: dict[str, Any] = {
            "test": {},
            "result": None,
            "test_error": "",
            "new_key": None,
            "key_error": "",
        }
        context.update(extra)
        return self.render(
            request, "policies.html", status, page="policies", policy=self.service.policy(),
            principals=await self.service.principals(), keys=await self.service.keys(), **context,
        )  # fmt: skip

    async def policy_test(self, request: Request) -> Response:
        form = await request.form()
        values = {k: str(form.get(k) or "") for k in ("principal", "roles", "kind", "name", "server", "args")}
        try:
            args = orjson.loads(values["args"]) if values["args"].strip() else {}
            result = self.service.test_policy(
                principal=values["principal"], roles=values["roles"].split(","), kind=values["kind"] or "tool",
                name=values["name"], server=values["server"], args=args,
            )  # fmt: skip
        except orjson.JSONDecodeError:
            return await self.policies(request, status=400, test=values, test_error="Arguments must be JSON.")
        except InvalidInput as exc:
            return await self.policies(request, status=400, test=values, test_error=str(exc))
        return await self.policies(request, test=values, result=result)

    async def create_key(self, request: Request) -> Response:
        from bastion.auth.apikeys import parse_duration

        form: FormData = await request.form()
        principal: Principal = request.scope["state"]["principal"]
        expires = str(form.get("expires_in") or "").strip()
        try:
            expires_in = parse_duration(expires) if expires else None
            key, info = await self.service.create_key(
                str(form.get("principal") or ""), str(form.get("roles") or "").split(","),
                expires_in=expires_in, by=principal,
            )  # fmt: skip
        except ValueError as exc:  # InvalidInput is a ValueError too
            return await self.policies(request, status=400, key_error=str(exc))
        return await self.policies(request, status=201, new_key={"key": key, **info.to_dict()})

    async def revoke_key(self, request: Request) -> Response:
        principal: Principal = request.scope["state"]["principal"]
        done = await self.service.revoke_key(request.path_params["key_id"], by=principal)
        return RedirectResponse(
            f"/ui/policies?msg={'revoked' if done else 'unknown-key'}#keys", status_code=303
        )

    async def audit(self, request: Request) -> Response:
        window = request.query_params.get("window", "24h")
        window = window if window in WINDOWS else "24h"
        seconds = WINDOWS[window]
        error = ""
        try:
            filters = audit_filters(request, limit_cap=MAX_PAGE)
        except InvalidInput as exc:
            filters, error = AuditFilters(), str(exc)
        if seconds and filters.since is None:
            filters = dataclasses.replace(filters, since=time.time() - seconds)
        events = await self.service.audit.search(filters) if not error else []
        verification = None
        if request.query_params.get("verify"):
            verification = await self.service.audit.verify()
        export = {
            k: v
            for k, v in dataclasses.asdict(filters).items()
            if v not in ("", None) and k not in ("limit", "offset")
        }
        return self.render(
            request, "audit.html", page="audit", events=events, filters=filters, window=window, windows=WINDOWS,
            outcomes=OUTCOMES, error=error, source=self.service.audit.name,
            durable=self.service.audit.durable, verification=verification, export_query=urlencode(export),
        )  # fmt: skip

    # -- routes -----------------------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """Routes relative to the `/ui` mount (behind the gate)."""
        post = ["POST"]
        table: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
            ("/", self.home, ["GET"]),
            ("/live", self.live, ["GET"]),
            ("/events/{event_id}", self.event, ["GET"]),
            ("/sessions/{session_id}", self.session, ["GET"]),
            ("/overview", self.overview, ["GET"]),
            ("/servers", self.servers, ["GET"]),
            ("/servers/{server}/tools/{tool}/{decision}", self.decide_tool, post),
            ("/approvals", self.approvals, ["GET"]),
            ("/approvals/{approval_id}/{decision}", self.answer, post),
            ("/policies", self.policies, ["GET"]),
            ("/policies/test", self.policy_test, post),
            ("/keys", self.create_key, post),
            ("/keys/{key_id}/revoke", self.revoke_key, post),
            ("/audit", self.audit, ["GET"]),
            ("/logout", self.logout, post),
        ]
        routes = []
        for path, endpoint, methods in table:
            if path.startswith("/servers/"):
                endpoint = _decisions(endpoint, ("approve", "reject"))
            elif path.startswith("/approvals/"):
                endpoint = _decisions(endpoint, ("approve", "deny"))
            routes.append(Route(path, endpoint, methods=methods))
        return routes


def _token_expiry(principal: Principal, credential: str) -> float | None:
    """A verified JWT's `exp`, so a dashboard session never outlives the token that opened it."""
    if principal.method != "jwt":
        return None
    import jwt

    try:
        claims = jwt.decode(credential, options={"verify_signature": False})  # verified just before
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return float(exp) if isinstance(exp, int | float) else None


def _decisions(
    endpoint: Callable[[Request], Awaitable[Response]], allowed: tuple[str, ...]
) -> Callable[[Request], Awaitable[Response]]:
    """Only the `allowed` decision words are routes; anything else is a 404."""

    async def checked(request: Request) -> Response:
        if request.path_params.get("decision") not in allowed:
            return Response(status_code=404)
        return await endpoint(request)

    return checked
