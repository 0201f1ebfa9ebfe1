"""`Contribution`: what one feature adds to a gateway, as a value the core applies, never a mutation.

A feature's `build_*(config, ports) -> ...` returns one of these (with its own typed handles beside it); the
composition root (`bastion.app.compose`) hands them to `Gateway.use` once, in the order it writes down. Features
never set attributes on the gateway and never look each other up by name.

Rules:
- Every field is optional; an empty `Contribution()` changes nothing.
- Stages are appended in the order given (the root passes them as one ordered list); observers likewise, so the
  root's order is the order they run in.
- Resources start in the order given, before the upstreams connect, and close in reverse, after them (an
  `AsyncExitStack`); a failing close is logged and the others still run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bastion.core.ports import Closer, Opener, Revocations
from bastion.guard.channels import ChannelGuard
from bastion.pipeline.chain import ChainTracer
from bastion.pipeline.notice import NoticeObserver
from bastion.pipeline.stage import ExchangeObserver, Stage
from bastion.transports.base import JsonDict

SessionListener = Callable[[str, Any], Any]
"""(event, session) for `start`, `restore` and `end` of every stateful session."""
ApprovalListener = Callable[[str, Any], None]
"""(event, item) for every approval `pending` and decision (`pipeline/approvals.py`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """Something with a life as long as the gateway's: started before the upstreams, closed after them."""

    name: str
    """For the log line when closing it fails."""
    open: Opener | None = None
    """Run at start (open a store, start a watcher)."""
    close: Closer | None = None
    """Run at close, in reverse order (flush the trail, stop the watcher)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Contribution:
    """What one feature adds. Handed to `Gateway.use`; each field is added to what is already there."""

    stages: tuple[Stage, ...] = ()
    """Pipeline stages, in chain order (the root gives the whole order in one list)."""
    observers: tuple[ExchangeObserver, ...] = ()
    """Exchange observers, run for every finished exchange (those with `on_notice` also get notices)."""
    notice_observers: tuple[NoticeObserver, ...] = ()
    """Notice observers that are not exchange observers."""
    resources: tuple[Resource, ...] = ()
    """Started at start, closed at close."""
    session_listeners: tuple[SessionListener, ...] = ()
    """Told when sessions start, are restored and end."""
    approval_listeners: tuple[ApprovalListener, ...] = ()
    """Told when a call is held for an operator and when it is decided."""
    listing_stages: tuple[Stage, ...] = ()
    """Stages of the listing chain (`pipeline/stages/listing.py`), in order: they judge each upstream's list
    (tool definitions, prompts, resources) before the catalogue caches it and before routing knows its items."""
    channel_guard: ChannelGuard | None = None
    """Screens errors, relayed requests, notifications and instructions on their way to clients."""
    tracer: ChainTracer | None = None
    """Spans for requests, stages and upstream calls."""
    revocations: Revocations | None = None
    """The cluster's terminated session ids (restoring a sealed id checks it)."""
    health: tuple[tuple[str, Callable[[], JsonDict]], ...] = ()
    """Extra `/readyz` sections, by key."""
    routes: tuple[Any, ...] = ()
    """HTTP routes (Starlette `BaseRoute`s), served behind the security middleware."""
    middleware: tuple[Callable[[Any], Any], ...] = ()
    """ASGI wrappers, innermost first, inside authentication."""
