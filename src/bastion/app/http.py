"""The HTTP side of the composition root: the ASGI app with its security layers, routes and middleware.

`build_http_app(runtime, ...)` adds the last contributions (telemetry's route and middleware, the dashboard) and
hands the gateway to `server.app.create_app`; `check_listen_address` refuses an unauthenticated public listener.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from bastion.app.runtime import Runtime
from bastion.audit.install import auth_failure_hook
from bastion.auth.middleware import AuthMiddleware
from bastion.config.model import BastionConfig
from bastion.errors import AuthError, ConfigError
from bastion.server.app import create_app
from bastion.web.wiring import bearer_auth_config, build_dashboard


def check_listen_address(config: BastionConfig, host: str) -> None:
    """Refuse to listen beyond loopback with authentication switched off."""
    if config.auth.enabled:
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigError(
            f"refusing to listen on {host} with authentication off; enable `auth` or bind to 127.0.0.1",
            path="auth.enabled",
        )


def build_http_app(runtime: Runtime, *, host: str, port: int) -> Any:
    """The ASGI app: security middleware, authentication, then MCP endpoints and health."""
    parts = [runtime.telemetry.contribution] if runtime.telemetry is not None else []
    # The dashboard's own gate guards /ui and /api (admins only, session cookie or bearer), so the bearer
    # middleware leaves those paths to it (`bearer_auth_config`).
    dashboard = build_dashboard(
        runtime,
        recorder=runtime.audit.recorder if runtime.audit is not None else None,
        pins=runtime.guardrails.pins if runtime.guardrails is not None else None,
    )
    if dashboard is not None:
        runtime.gateway.use(dashboard.contribution)  # its feed observes last: audit and metrics first
        runtime.dashboard = dashboard
        parts.append(dashboard.contribution)
    routes = [route for part in parts for route in part.routes]

    def wrap(inner: Any) -> Any:
        # Inside the security layers (catch-all, Host/Origin, body limit) that create_app keeps outermost.
        for part in parts:
            for middleware in part.middleware:
                inner = middleware(inner)
        return AuthMiddleware.from_config(
            inner,
            bearer_auth_config(runtime),
            runtime.authenticator,
            on_failure=auth_failure_hook(runtime.gateway),
        )

    return create_app(
        runtime.gateway,
        extra_routes=routes,
        wrap=wrap,
        listen_host=host,
        readiness_detail=readiness_detail(runtime),
        ui_origins=runtime.config.ui.allowed_origins,
    )


def readiness_detail(runtime: Runtime) -> Any:
    """`/readyz` detail (upstream names, states, last errors) only for the admin role; with authentication off
    (loopback only, where every caller may already use every tool) for everyone."""
    config = runtime.config

    async def allowed(scope: Any) -> bool:
        if not config.auth.enabled:
            return True
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        try:
            principal = await runtime.authenticator.authenticate(headers)
        except AuthError:
            return False
        policy = runtime.policy
        roles = policy.engine.roles_of(principal) if policy is not None else principal.roles
        return config.ui.admin_role in roles

    return allowed
