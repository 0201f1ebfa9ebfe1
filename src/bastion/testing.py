"""Public test helpers: run a real `Gateway` in-process between an official-SDK client and SDK servers.

Example:
    async with running_gateway({"calc": my_mcpserver}) as gw:
        async with Client(client_transport(gw)) as client:
            await client.call_tool("calc__add", {"a": 1, "b": 2})
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from bastion.audit.capture import CapturedAudit, capture_audit
from bastion.config.loader import parse_config
from bastion.config.model import BastionConfig
from bastion.core.gateway import Gateway
from bastion.pipeline.stage import ExchangeObserver, Stage
from bastion.server.memory import memory_server_transport
from bastion.transports.base import ClientTransport
from bastion.transports.memory import MemoryClientTransport
from bastion.types import ANONYMOUS, Principal

__all__ = ["CapturedAudit", "capture_audit", "client_transport", "memory_config", "running_gateway"]


def memory_config(names: Sequence[str], **extra: Any) -> BastionConfig:
    """A config whose servers are placeholders for in-process SDK servers."""
    servers = {
        name: {"transport": "stdio", "command": "in-memory", "connect_timeout_seconds": 10} for name in names
    }
    return parse_config({"servers": servers, **extra})


@contextlib.asynccontextmanager
async def running_gateway(
    servers: dict[str, Any],
    *,
    config: BastionConfig | None = None,
    stages: Sequence[Stage] = (),
    observers: Sequence[ExchangeObserver] = (),
    transports: dict[str, Callable[[], ClientTransport]] | None = None,
) -> AsyncIterator[Gateway]:
    """Start a gateway whose upstreams are official-SDK server objects in this process (plus any `transports`)."""
    config = config or memory_config(list(servers) + list(transports or {}))
    factories: dict[str, Callable[[], ClientTransport]] = dict(transports or {})
    for name, server in servers.items():
        factories[name] = _memory_factory(server)
    gateway = Gateway(config, stages=stages, observers=observers, transports=factories)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.aclose()


def _memory_factory(server: Any) -> Callable[[], ClientTransport]:
    return lambda: MemoryClientTransport(server)


def client_transport(gateway: Gateway, *, principal: Principal = ANONYMOUS) -> Any:
    """An SDK client `Transport` connected to `gateway` in memory, as `principal`."""
    return memory_server_transport(gateway, principal=principal)
