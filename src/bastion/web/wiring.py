"""Assemble the dashboard from a `Runtime`: the live feed, login sessions, the admin service, pages and API routes.

The composition root (`bastion.app.http.build_http_app`) calls `build_dashboard(runtime)`, adds its contribution
to the gateway (the live feed as the last observer, its closing) and passes its routes to `create_app(...,
extra_routes=...)`, and wraps the app with `AuthMiddleware` configured by `bearer_auth_config()`: the bearer
middleware stops guarding `/api` and `/ui` because `AdminGate` guards them, more strictly (admins only) and with
the session cookie the browser needs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.staticfiles import StaticFiles

from bastion.auth.authenticator import Authenticator
from bastion.auth.config import AuthConfig
from bastion.core.contribution import Contribution, Resource
from bastion.types import Principal
from bastion.web.adapters import audit_source, tool_pins
from bastion.web.api import api_routes
from bastion.web.config import UIConfig
from bastion.web.feed import LiveFeed
from bastion.web.gate import AdminGate, RolesOf
from bastion.web.openapi import openapi_document
from bastion.web.pages import Pages
from bastion.web.render import STATIC, environment
from bastion.web.service import AdminService
from bastion.web.sessions import UISessions

if TYPE_CHECKING:
    from bastion.core.gateway import Gateway
    from bastion.policy.holder import PolicyHolder
    from bastion.state.base import StateStore
    from bastion.upstream.config import ServerConfig


class WebConfig(Protocol):
    """The sections of the configuration the dashboard reads (`bastion.config.BastionConfig` is one)."""

    @property
    def auth(self) -> AuthConfig:
        """The MCP endpoints' authentication, which the dashboard login reuses."""
        ...

    @property
    def ui(self) -> UIConfig:
        """The dashboard's own section."""
        ...

    @property
    def servers(self) -> Mapping[str, ServerConfig]:
        """The upstream servers by name."""
        ...


class Runtime(Protocol):
    """What the dashboard reads of the runtime the composition root built (`bastion.app.runtime.Runtime`)."""

    @property
    def config(self) -> WebConfig:
        """The configuration the runtime was built from."""
        ...

    gateway: Gateway
    store: StateStore
    authenticator: Authenticator
    policy: PolicyHolder | None


logger = logging.getLogger("bastion.web")

GATED_PREFIXES = ("/ui", "/api")
"""Path prefixes `AdminGate` protects (the bearer middleware leaves them to it)."""


@dataclass(slots=True)
class Dashboard:
    """The assembled dashboard: its routes, and the parts tests and other packages may reach."""

    config: UIConfig
    feed: LiveFeed
    sessions: UISessions
    service: AdminService
    authenticator: Authenticator
    routes: list[BaseRoute]
    contribution: Contribution
    """The feed as the last observer (audit and metrics first; it also gets notices) and approvals listener;
    closing the feed (ends open live streams when the gateway closes) and the login authenticator."""


def ui_config(runtime: Runtime) -> UIConfig:
    """The `ui:` section (defaults when the config model has none)."""
    config = getattr(runtime.config, "ui", None)
    return config if isinstance(config, UIConfig) else UIConfig()


def _login_authenticator(runtime: Runtime) -> tuple[Authenticator, bool]:
    """The MCP endpoints' authenticator; with `auth.enabled: false`, one that still checks credentials (and is
    the dashboard's own to close: the second value).

    The dashboard always needs a login, even on a loopback gateway that lets anonymous agents in.
    """
    if runtime.authenticator.enabled:
        return runtime.authenticator, False
    forced = runtime.config.auth.model_copy(update={"enabled": True})
    if not forced.api_keys.enabled and forced.jwt is None:
        forced = forced.model_copy(update={"api_keys": forced.api_keys.model_copy(update={"enabled": True})})
    return Authenticator.from_config(forced, runtime.store), True


def build_dashboard(runtime: Runtime, *, recorder: Any = None, pins: Any = None) -> Dashboard | None:
    """Build the dashboard (its feed goes to the gateway through `Dashboard.contribution`); None when
    `ui.enabled` is off.

    Args:
        runtime: The built runtime.
        recorder: The audit recorder when audit is on (the dashboard reads its trail), else None.
        pins: The guardrails' `ToolPins` when pinning is on, else None.
    """
    config = ui_config(runtime)
    if not config.enabled:
        return None
    feed = LiveFeed(capacity=config.feed_size, subscriber_queue=config.subscriber_queue)
    sessions = UISessions(runtime.store, lifetime=config.session_seconds)
    authenticator, own = _login_authenticator(runtime)
    # The feed ends open live streams when the gateway closes. Connection point: create_app's drain hooks
    # (`Lifecycle.on_drain`) would end them when shutdown *begins*, before uvicorn waits for connections.
    resources = [Resource(name="dashboard feed", close=_async(feed.close))]
    if own:
        resources.insert(0, Resource(name="dashboard login", close=authenticator.aclose))
    service = AdminService(
        runtime, feed=feed, config=config, audit=audit_source(recorder, feed), pins=tool_pins(pins)
    )

    def roles_of() -> RolesOf:
        holder = runtime.policy
        if holder is None:
            return _own_roles
        return holder.engine.roles_of  # read on every request: a reload applies at once

    origins = tuple(runtime.config.ui.allowed_origins)
    from bastion.audit.install import auth_failure_hook

    on_failure = auth_failure_hook(runtime.gateway)
    pages = Pages(
        service,
        env=environment,
        config=config,
        sessions=sessions,
        authenticator=authenticator,
        roles_of=roles_of,
        allowed_origins=origins,
        on_failure=on_failure,
    )

    def gate(app: Router, area: str) -> AdminGate:
        return AdminGate(
            app,
            area=area,
            authenticator=authenticator,
            sessions=sessions,
            store=runtime.store,
            admin_role=config.admin_role,
            roles_of=roles_of,
            allowed_origins=origins,
            forbidden=pages.forbidden,
            on_failure=on_failure,
        )

    api = Router(api_routes(service, openapi_document))
    routes: list[BaseRoute] = [
        Mount("/ui/static", app=StaticFiles(directory=STATIC), name="ui-static"),
        Route("/ui/login", pages.login, methods=["GET", "POST"]),
        Mount("/ui", app=gate(Router(pages.routes()), "ui")),
        Mount("/api", app=gate(api, "api")),
    ]
    return Dashboard(
        config=config,
        feed=feed,
        sessions=sessions,
        service=service,
        authenticator=authenticator,
        routes=routes,
        contribution=Contribution(
            observers=(feed,),
            approval_listeners=(feed.on_approval,),
            resources=tuple(resources),
            routes=tuple(routes),
        ),
    )


def _async(hook: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        hook()

    return run


def _own_roles(principal: Principal) -> frozenset[str]:
    return principal.roles


def bearer_auth_config(runtime: Runtime) -> AuthConfig:
    """`auth:` for the bearer middleware: without `/ui` and `/api` when the dashboard's gate guards them."""
    auth = runtime.config.auth
    if not ui_config(runtime).enabled:
        return auth
    kept = [
        p
        for p in auth.protected_paths
        if not any(p.rstrip("/").lower() == g or p.lower().startswith(g + "/") for g in GATED_PREFIXES)
    ]
    return auth.model_copy(update={"protected_paths": kept})
