"""A gateway with guardrails wired as `build_runtime` wires them, around in-process SDK servers, plus a recorder."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from bastion.app.guardrails import Guardrails, guard_contribution
from bastion.config import parse_config
from bastion.core.contribution import Contribution
from bastion.core.gateway import Gateway
from bastion.guard.engine import Guard
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.state import EmbeddedStateStore, StateStore
from bastion.transports.memory import MemoryClientTransport


@dataclass
class Recorder:
    """An exchange and notice observer that keeps everything it sees."""

    exchanges: list[Exchange] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    async def on_exchange(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)

    async def on_notice(self, notice: Notice) -> None:
        self.notices.append(notice)

    def last(self, method: str) -> Exchange:
        return [e for e in self.exchanges if e.method == method][-1]

    def of_kind(self, kind: NoticeKind) -> list[Notice]:
        return [n for n in self.notices if n.kind is kind]


@dataclass
class Guarded:
    gateway: Gateway
    guardrails: Guardrails
    recorder: Recorder
    store: StateStore


@contextlib.asynccontextmanager
async def guarded_gateway(
    servers: dict[str, Any],
    guardrails: dict[str, Any] | None = None,
    *,
    guard: Guard | None = None,
    store: StateStore | None = None,
    protocol: str = "auto",
    **extra: Any,
) -> AsyncIterator[Guarded]:
    """Start a gateway over in-process SDK `servers` with the guard stage last and the tool screen attached."""
    config = parse_config(
        {
            "servers": {
                n: {"transport": "stdio", "command": "in-memory", "protocol": protocol} for n in servers
            },
            "guardrails": guardrails or {},
            **extra,
        }
    )
    own_store = store is None
    store = store or EmbeddedStateStore(":memory:")
    if own_store:
        await store.__aenter__()
    built = Guardrails.from_config(config.guardrails, store, guard=guard)
    recorder = Recorder()
    factories = {n: (lambda s=s: MemoryClientTransport(s)) for n, s in servers.items()}
    gateway = Gateway(config, stages=[built.stage], observers=[recorder], transports=factories)
    gateway.use(
        Contribution(listing_stages=built.listing_stages(gateway.emit)), guard_contribution(built, gateway)
    )
    await gateway.start()
    try:
        yield Guarded(gateway=gateway, guardrails=built, recorder=recorder, store=store)
    finally:
        await gateway.aclose()
        if own_store:
            await store.aclose()
