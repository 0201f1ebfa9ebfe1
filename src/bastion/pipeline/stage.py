"""The `Stage` protocol: one step of the pipeline, with a request hook and a response hook."""

from __future__ import annotations

import enum
from typing import Protocol, runtime_checkable

from bastion.pipeline.exchange import Exchange
from bastion.pipeline.verdicts import PASS, Verdict


class FailureMode(enum.StrEnum):
    """What happens when a stage itself fails (raises, or a dependency is down)."""

    CLOSED = "closed"
    """Refuse the message. The default: a security decision that cannot be made is a denial."""
    OPEN = "open"
    """Let the message through and record the failure. Opt-in, per stage."""


@runtime_checkable
class Stage(Protocol):
    """A pipeline step. Stages do no transport I/O; they only look at the exchange and answer with a verdict."""

    name: str
    failure_mode: FailureMode

    async def on_request(self, exchange: Exchange) -> Verdict:
        """Judge the request on its way to the upstream."""
        ...

    async def on_response(self, exchange: Exchange) -> Verdict:
        """Judge the response (`exchange.result`) on its way back; runs in reverse stage order."""
        ...


class BaseStage:
    """Convenience base: both hooks pass, fail-closed. Subclasses override what they need."""

    name: str = "stage"
    failure_mode: FailureMode = FailureMode.CLOSED

    async def on_request(self, exchange: Exchange) -> Verdict:
        return PASS

    async def on_response(self, exchange: Exchange) -> Verdict:
        return PASS


class ExchangeObserver(Protocol):
    """Runs outside the chain for every finished exchange, rejections and errors included (audit, metrics)."""

    async def on_exchange(self, exchange: Exchange) -> None:
        """Record the exchange. Raising here means the record failed (strict audit turns that into an error)."""
        ...
