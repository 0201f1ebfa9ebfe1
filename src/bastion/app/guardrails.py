"""The guardrails of a gateway: the guard engine, its pipeline stage, the tool screen and the pins, from one section.

The composition root builds them when `guardrails.enabled`, puts `stage` in the chain and adds
`guard_contribution(...)` (the tool screen, the entry screen, the channel guard, the pins poll); they are kept in
`Runtime.guardrails`, where the admin API finds `pins` (list, diff, approve, reject). They live here, beside the
root, because they join the guard (a lower layer) to the pipeline and the core's ports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bastion.core.contribution import Contribution, Resource
from bastion.core.ports import Ports
from bastion.guard.channels import ChannelGuard
from bastion.guard.config import GuardrailsConfig
from bastion.guard.engine import Guard
from bastion.guard.pins import ToolPins
from bastion.guard.screen import ToolScreen
from bastion.guard.setup import compiled_guard
from bastion.pipeline.notice import Notice
from bastion.pipeline.stages.guard import GuardStage
from bastion.pipeline.stages.listing import EntryScreen, EntryScreenStage, ToolScreenStage
from bastion.state.base import StateStore


@dataclass(slots=True, kw_only=True)
class Guardrails:
    """Everything `guardrails:` asks for, ready to attach to a gateway."""

    guard: Guard
    """The compiled detectors and actions."""
    screen: ToolScreen
    """Screens tool definitions (poisoning, rug pulls) before the catalogue caches them."""
    stage: GuardStage
    """The pipeline stage (arguments and results)."""
    pins: ToolPins | None
    """Tool pins (None when `rug_pull: off`)."""
    channels: ChannelGuard
    """Screens errors, relayed requests, notifications, instructions and list entries on their way to clients."""

    @classmethod
    def from_config(
        cls, config: GuardrailsConfig, store: StateStore, *, guard: Guard | None = None
    ) -> Guardrails:
        """Compile the guard and build the stage, the screen and the pins over `store`.

        Args:
            config: the `guardrails:` section.
            store: the gateway's state store (shared by replicas with Redis, so are pins and approvals).
            guard: an already compiled guard (tests with their own detectors).
        """
        guard = guard if guard is not None else compiled_guard(config)
        pins = ToolPins(store) if config.rug_pull != "off" else None
        screen = ToolScreen(
            guard, pins, rug_pull=config.rug_pull, fail_closed=config.failure_mode == "closed"
        )

        def schema_of(server: str, tool: str) -> dict[str, Any] | None:
            return screen.schemas.get((server, tool))

        return cls(
            guard=guard,
            screen=screen,
            stage=GuardStage(guard, schemas=schema_of),
            pins=pins,
            channels=ChannelGuard(guard),
        )

    def listing_stages(
        self, emit: Callable[[Notice], Awaitable[None]]
    ) -> tuple[ToolScreenStage, EntryScreenStage]:
        """The guardrails' stages of the listing chain: tool definitions, then prompt/resource/template entries."""
        return ToolScreenStage(self.screen), EntryScreenStage(self.entry_screen(emit))

    def entry_screen(self, emit: Callable[[Notice], Awaitable[None]]) -> EntryScreen:
        """The catalogue's screen of prompt, resource and template entries (the `listing` channel)."""

        async def entries(server: str, method: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            kept: list[dict[str, Any]] = []
            for item in items:
                what = f"{method}:{item.get('name') or item.get('uri') or item.get('uriTemplate') or ''}"
                screened = self.channels.screen("listing", server, item)
                notice = screened.notice("listing", server, what)
                if notice is not None:
                    await emit(notice)
                if screened.allowed and isinstance(screened.payload, dict):
                    kept.append(screened.payload)
            return kept

        return entries


def build_guardrails(config: GuardrailsConfig, store: StateStore) -> Guardrails | None:
    """`Guardrails.from_config`, or None when `guardrails.enabled` is false."""
    return Guardrails.from_config(config, store) if config.enabled else None


def guard_contribution(guardrails: Guardrails, ports: Ports) -> Contribution:
    """Guardrails beyond their stages (the root places those): the channel guard, and the pins of the tool screen
    (their notices, the poll that releases approved tools and the lists it must refresh)."""
    screen = guardrails.screen

    async def released(servers: list[str]) -> None:
        for server in servers:
            ports.lists.invalidate(server, "tools/list")
        await ports.notify_sessions("notifications/tools/list_changed")

    screen.bind(ports.emit, released)
    return Contribution(
        channel_guard=guardrails.channels,
        resources=(Resource(name="tool pins poll", open=screen.start, close=screen.stop),),
    )
