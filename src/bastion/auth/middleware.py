"""`AuthMiddleware`: pure ASGI authentication in front of every protected HTTP path, plus RFC 9728 metadata.

Rules:
- It runs before any MCP handling: an unauthenticated request never reaches a session, a policy or an upstream.
- Paths are compared after collapsing repeated slashes and case-folding, so `//MCP` is as protected as `/mcp`.
- Success puts the `Principal` in `scope["state"]["principal"]`; failure answers 401 with
  `WWW-Authenticate: Bearer ... resource_metadata="..."` and a small JSON body naming the failure reason.
- Tokens are never logged; the log line has the failure reason and the client address only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from bastion.auth.authenticator import Authenticator
from bastion.auth.config import AuthConfig
from bastion.auth.failures import AuthFailure, FailureHook, credential_facts, failure_of
from bastion.auth.metadata import metadata_paths, resource_metadata, resource_metadata_url, www_authenticate
from bastion.errors import AuthError, HttpAnswer, http_error

logger = logging.getLogger("bastion.auth")

_SLASHES = re.compile(r"/{2,}")

AuthFailureHook = FailureHook
"""Told of every refusal as (failure reason, client address, path, key id facts); never a secret (audit)."""


def _normalized(path: str) -> str:
    return _SLASHES.sub("/", path).casefold()


class AuthMiddleware:
    """Wrap an ASGI app so protected paths need a credential and the metadata document is served."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticator: Authenticator,
        protected_paths: Iterable[str] = ("/mcp", "/sse", "/messages", "/api"),
        metadata: dict[str, Any] | None = None,
        metadata_url: str | None = None,
        metadata_paths: Iterable[str] = (),
        on_failure: AuthFailureHook | None = None,
    ) -> None:
        self.app = app
        self._on_failure = on_failure
        self.authenticator = authenticator
        self._protected = tuple(_normalized(p).rstrip("/") for p in protected_paths)
        self._metadata = metadata
        self._metadata_url = metadata_url
        self._metadata_paths = frozenset(metadata_paths)

    @classmethod
    def from_config(
        cls,
        app: ASGIApp,
        config: AuthConfig,
        authenticator: Authenticator,
        *,
        on_failure: AuthFailureHook | None = None,
    ) -> AuthMiddleware:
        """Wrap `app` as the `auth:` section says (metadata served only when `resource_url` is set)."""
        serve = config.resource_url is not None
        return cls(
            app,
            authenticator=authenticator,
            protected_paths=config.protected_paths,
            metadata=resource_metadata(config) if serve else None,
            metadata_url=resource_metadata_url(config.resource_url) if config.resource_url else None,
            metadata_paths=metadata_paths(config.resource_url) if serve else (),
            on_failure=on_failure,
        )

    def _is_protected(self, path: str) -> bool:
        path = _normalized(path)
        return any(path == p or path.startswith(p + "/") for p in self._protected)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if (
            scope["type"] == "http"
            and self._metadata is not None
            and path.rstrip("/") in self._metadata_paths
        ):
            await self._send_json(send, HttpAnswer(status=200, body=orjson.dumps(self._metadata)))
            return
        if not self.authenticator.enabled or not self._is_protected(path):
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope.get("headers", [])
            if k.lower() in (b"authorization", b"x-api-key")
        }
        try:
            principal = await self.authenticator.authenticate(headers)
        except AuthError as exc:
            await self._refuse(scope, send, exc)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, exc: AuthError) -> None:
        failure = failure_of(exc)
        client = scope.get("client") or ("", 0)
        logger.info("authentication refused: %s (client %s)", failure, client[0])
        if self._on_failure is not None:
            self._on_failure(str(failure), str(client[0]), str(scope.get("path", "")), credential_facts(exc))
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        missing = failure is AuthFailure.MISSING
        error = (
            None if missing else "invalid_request" if failure is AuthFailure.MALFORMED else "invalid_token"
        )
        challenge = www_authenticate(metadata_url=self._metadata_url, error=error)
        answer = http_error(
            exc,
            status=401,
            problem=(error or "unauthorized", str(failure)),
            headers=[(b"www-authenticate", challenge.encode("latin-1"))],
        )
        await self._send_json(send, answer)

    @staticmethod
    async def _send_json(send: Send, answer: HttpAnswer) -> None:
        """A JSON answer that no cache keeps (a challenge or the protected-resource metadata)."""
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(answer.body)).encode()),
            (b"cache-control", b"no-store"),
            *answer.headers,
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})
