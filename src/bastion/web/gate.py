"""`AdminGate`: pure ASGI authentication, admin authorization and CSRF defence in front of `/ui` and `/api`.

Rules:
- `/api` accepts a bearer credential (`Authorization: Bearer` or `X-API-Key`, checked by the `Authenticator`) or
  the dashboard session cookie; `/ui` accepts the cookie only (a browser page never carries a bearer).
- No credential: 401 on `/api` (with a `Bearer` challenge), a redirect to the login page on `/ui`. A credential
  without the admin role: 403. The admin role may come from the credential or from `policy.principals`, looked
  up on every request, so a policy reload that takes the role away takes effect at once.
- A session logged in with an API key ends when that key is revoked or expires (checked on every request); one
  opened with a token ends when the token expires.
- Cookie-authenticated requests that change state (anything but GET/HEAD/OPTIONS) need both a same-origin
  `Origin` (or, without one, `Referer`) and the session's CSRF token, in `X-CSRF-Token` or the `csrf_token` form
  field. Bearer requests need neither: a browser never attaches a bearer on its own.
- Every response gets security headers (CSP without inline script, no framing, no caching of admin data).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.auth.apikeys import NAMESPACE as API_KEYS
from bastion.auth.authenticator import Authenticator
from bastion.auth.failures import FailureHook as AuthFailureHook
from bastion.auth.failures import credential_facts, failure_of
from bastion.errors import AuthError, Forbidden, HttpAnswer, http_error
from bastion.state.base import RecordStore
from bastion.types import Principal
from bastion.web.sessions import COOKIE_NAME, CSRF_FIELD, CSRF_HEADER, UISession, UISessions

logger = logging.getLogger("bastion.web")

MAX_FORM_BYTES: Final = 64 * 1024
"""Largest HTML form body the gate buffers to read its CSRF token (dashboard forms are a few hundred bytes)."""
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_HEADERS: Final = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)

FailureHook = AuthFailureHook
"""(reason, client address, path[, facts]): audits a refused credential, a non-admin or a cross-site request."""
RolesOf = Callable[[Principal], frozenset[str]]
"""The principal's effective roles (its own plus those the policy in force grants it by name)."""


def header(scope: Scope, name: bytes) -> str | None:
    """One request header (the first), decoded as latin-1."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def cookie(scope: Scope, name: str) -> str | None:
    """One cookie value from the Cookie header."""
    raw = header(scope, b"cookie")
    if not raw:
        return None
    for part in raw.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def same_origin(scope: Scope, allowed: Iterable[str] = ()) -> bool:
    """Whether the request's Origin (or Referer) names this host: the CSRF origin check.

    The host is compared with the `Host` header (the scheme is ignored: a TLS-terminating proxy may talk plain
    HTTP to us); `allowed` adds explicitly configured origins.
    """
    source = header(scope, b"origin")
    if source is None or source == "null":
        source = header(scope, b"referer")
    if not source:
        return False
    parts = urlsplit(source)
    origin = f"{parts.scheme}://{parts.netloc}"
    host = header(scope, b"host")
    return (host is not None and parts.netloc.lower() == host.lower()) or origin in set(allowed)


def with_security_headers(send: Send) -> Send:
    """Wrap `send` so the response start carries `SECURITY_HEADERS` (without duplicating any)."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {bytes(k).lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


async def _answer(send: Send, answer: HttpAnswer) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(answer.body)).encode()),
        *answer.headers,
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _buffer_form(receive: Receive) -> tuple[bytes, Receive] | None:
    """Read a whole (small) body; returns it and a `receive` that replays it, or None when it is too large."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        body = message.get("body", b"")
        size += len(body)
        if size > MAX_FORM_BYTES:
            return None
        chunks.append(body)
        if not message.get("more_body", False):
            break
    data = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": data, "more_body": False}
        return await receive()

    return data, replay


class AdminGate:
    """Wrap the dashboard (`area="ui"`) or the admin API (`area="api"`) so only admins get through."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        area: str,
        authenticator: Authenticator,
        sessions: UISessions,
        store: RecordStore,
        admin_role: str,
        roles_of: Callable[[], RolesOf],
        allowed_origins: Iterable[str] = (),
        login_path: str = "/ui/login",
        forbidden: Callable[[Scope, Receive, Send, Principal], Awaitable[None]] | None = None,
        on_failure: FailureHook | None = None,
    ) -> None:
        if area not in ("ui", "api"):
            raise ValueError("area must be 'ui' or 'api'")
        self.app = app
        self.area = area
        self.authenticator = authenticator
        self.sessions = sessions
        self.store = store
        self.admin_role = admin_role
        self._roles_of = roles_of
        self.allowed_origins = tuple(allowed_origins)
        self.login_path = login_path
        self._forbidden = forbidden
        self._on_failure = on_failure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = with_security_headers(send)
        bearer = self.area == "api" and (
            header(scope, b"authorization") is not None or header(scope, b"x-api-key") is not None
        )
        session: UISession | None = None
        if bearer:
            try:
                principal = await self.authenticator.authenticate(
                    {
                        k: v
                        for k in ("authorization", "x-api-key")
                        if (v := header(scope, k.encode())) is not None
                    }
                )
            except AuthError as exc:
                self._report(scope, str(failure_of(exc)), credential_facts(exc))
                await self._unauthenticated(scope, send, invalid=True)
                return
        else:
            session = await self.live_session(cookie(scope, COOKIE_NAME))
            if session is None:
                await self._unauthenticated(scope, send, invalid=False)
                return
            principal = session.principal_object()
        if self.admin_role not in self._roles_of()(principal):
            logger.info("admin %s refused: %s lacks role %s", self.area, principal.name, self.admin_role)
            self._report(scope, "not_admin")
            if self._forbidden is not None and self.area == "ui":
                await self._forbidden(scope, receive, send, principal)
            else:
                await _answer(
                    send,
                    http_error(
                        Forbidden("admin role required"), problem=("forbidden", "admin role required")
                    ),
                )
            return
        if session is not None and scope["method"] not in SAFE_METHODS:
            checked = await self._check_csrf(scope, receive, session)
            if checked is None:
                self._report(scope, "csrf")
                await _answer(
                    send,
                    http_error(
                        Forbidden("cross-site request refused"),
                        problem=("csrf", "cross-site request refused"),
                    ),
                )
                return
            receive = checked
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["ui_session"] = session
        await self.app(scope, receive, send)

    def _report(self, scope: Scope, reason: str, facts: Mapping[str, Any] | None = None) -> None:
        if self._on_failure is not None:
            client = scope.get("client") or ("", 0)
            self._on_failure(reason, str(client[0]), str(scope.get("path", "")), facts)

    async def live_session(self, token: str | None) -> UISession | None:
        """The session behind a cookie, unless it expired or logged in with a key since revoked or expired."""
        session = await self.sessions.get(token)
        if session is None:
            return None
        if session.method == "api_key":
            record = await self.store.get_record(API_KEYS, session.key_id)
            expires = (record or {}).get("expires_at")
            if (
                record is None
                or record.get("revoked_at") is not None
                or (expires is not None and float(expires) <= time.time())
            ):
                await self.sessions.end(token)
                return None
        return session

    async def _check_csrf(self, scope: Scope, receive: Receive, session: UISession) -> Receive | None:
        """The `receive` to continue with when origin and token are right; None to refuse."""
        if not same_origin(scope, self.allowed_origins):
            return None
        if session.csrf_ok(header(scope, CSRF_HEADER.encode())):
            return receive
        content_type = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return None
        buffered = await _buffer_form(receive)
        if buffered is None:
            return None
        body, replay = buffered
        tokens = parse_qs(body.decode("latin-1"), keep_blank_values=True).get(CSRF_FIELD, [])
        return replay if len(tokens) == 1 and session.csrf_ok(tokens[0]) else None

    async def _unauthenticated(self, scope: Scope, send: Send, *, invalid: bool) -> None:
        if self.area == "ui":
            target = scope.get("path", "/ui/")
            query = scope.get("query_string", b"").decode("latin-1")
            if query:
                target += "?" + query
            await _redirect(send, f"{self.login_path}?next={quote(target, safe='')}")
            return
        error = "invalid_token" if invalid else "unauthorized"
        challenge = b'Bearer error="invalid_token"' if invalid else b"Bearer"
        failure = AuthError("invalid credentials" if invalid else "authentication required")
        await _answer(
            send, http_error(failure, problem=(error, ""), headers=[(b"www-authenticate", challenge)])
        )
