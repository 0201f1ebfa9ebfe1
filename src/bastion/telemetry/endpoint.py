"""`GET /metrics`: the Prometheus scrape endpoint as a Starlette route, and who may call it.

Rules (first match wins):
- A principal the auth middleware already put in the scope with one of `telemetry.metrics.roles` may scrape.
- With `loopback_open` (the default) a scrape from a loopback address needs no credential.
- `Authorization: Bearer <telemetry.metrics.bearer_token>` (constant-time comparison) may scrape.
- A credential Bastion's authenticator accepts (API key, JWT) whose principal has one of the roles may scrape.
- Anything else: 401 without a credential, 403 with one. The credential is never logged, and the body never says
  which check failed.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.errors import AuthError
from bastion.telemetry.config import MetricsConfig

if TYPE_CHECKING:
    from bastion.auth.authenticator import Authenticator
    from bastion.types import Principal

logger = logging.getLogger("bastion.telemetry")


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class MetricsAccess:
    """Decides whether one request may read the metrics."""

    def __init__(self, config: MetricsConfig, authenticator: Authenticator | None = None) -> None:
        self.config = config
        self.authenticator = authenticator
        self._roles = frozenset(config.roles)
        token = config.bearer_token
        self._token = token.get_secret_value().encode() if token is not None else None

    def _has_role(self, principal: Principal | None) -> bool:
        return principal is not None and bool(self._roles & principal.roles)

    async def check(self, request: Request) -> int:
        """200 when allowed, else the HTTP status to refuse with (401 or 403)."""
        state: dict[str, Any] = request.scope.get("state") or {}
        if self._has_role(state.get("principal")):
            return 200
        if self.config.loopback_open and _is_loopback(request.client.host if request.client else None):
            return 200
        presented = _bearer(request)
        if self._token is not None and presented is not None:
            if hmac.compare_digest(presented.encode(), self._token):
                return 200
        has_credential = presented is not None or "x-api-key" in request.headers
        if not has_credential:
            return 401
        if self.authenticator is None or not self.authenticator.enabled or not self._roles:
            return 403
        headers = {k: v for k, v in request.headers.items() if k in ("authorization", "x-api-key")}
        try:
            principal = await self.authenticator.authenticate(headers)
        except AuthError:
            return 401
        return 200 if self._has_role(principal) else 403


def metrics_route(
    render: Callable[[], tuple[bytes, str]],
    config: MetricsConfig,
    *,
    authenticator: Authenticator | None = None,
) -> Route:
    """The scrape route, for `create_app(..., extra_routes=[...])`.

    Args:
        render: Produces the exposition body and its content type (`MetricsObserver.render`).
        config: `telemetry.metrics` (path and access rules).
        authenticator: Bastion's authenticator, so API keys and JWTs of admins work too.
    """
    access = MetricsAccess(config, authenticator)

    async def scrape(request: Request) -> Response:
        status = await access.check(request)
        if status != 200:
            client = request.client.host if request.client else ""
            logger.info("metrics scrape refused (%s) for %s", status, client)
            headers = {"www-authenticate": "Bearer"} if status == 401 else {}
            return Response(status_code=status, headers={"cache-control": "no-store", **headers})
        body, content_type = render()
        return Response(body, headers={"content-type": content_type, "cache-control": "no-store"})

    return Route(config.path, scrape, methods=["GET"], name="metrics")
