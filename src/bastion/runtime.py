"""Assemble a running Bastion from config: the pipeline stages in their fixed order, observers, the HTTP app.

Stage order is fixed here, with the reason: authenticate (nothing else may see an anonymous call), authorize
(cheapest refusal, and hidden tools must not reach detectors), rate-limit (count only calls that could run),
validate (schema), guard (detectors; the most expensive). The response path runs them in reverse.
"""

from __future__ import annotations

from typing import Any

from bastion.auth.principal import Principal
from bastion.config.model import BastionConfig
from bastion.gateway import Gateway
from bastion.pipeline.stage import ExchangeObserver, Stage


def build_stages(config: BastionConfig) -> list[Stage]:
    """The pipeline, in the fixed order documented above."""
    stages: list[Stage] = []
    return stages


def build_observers(config: BastionConfig) -> list[ExchangeObserver]:
    """Observers run outside the chain for every exchange: audit first (strict mode gates the reply)."""
    observers: list[ExchangeObserver] = []
    return observers


def build_gateway(config: BastionConfig, *, config_path: str | None = None) -> Gateway:
    """A gateway with every configured stage and observer."""
    return Gateway(config, stages=build_stages(config), observers=build_observers(config))


def stdio_principal(config: BastionConfig) -> Principal:
    """The one local user of `bastion stdio` (policy applies there too)."""
    return Principal(name="local", roles=frozenset({"local"}), method="local")


def build_http_app(gateway: Gateway, *, host: str, port: int) -> Any:
    """The ASGI app: security middleware, then MCP endpoints, health, and (later) metrics, API and UI."""
    from bastion.server.app import create_app

    return create_app(gateway)
