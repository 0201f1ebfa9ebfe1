"""Parked calls: bridge a handshake-era upstream's server->client request to a 2026-07-28 client (MRTR).

A 2026-07-28 client cannot receive requests. When its call to a handshake-era upstream makes the upstream ask
something (sampling, elicitation, roots), Bastion parks the upstream call, answers the client with
`resultType: input_required` and an opaque `requestState`, and resumes the parked call when the client retries
with `inputResponses`.

Rules:
- `requestState` is a random 256-bit handle to server-side state (never client-readable data), bound to the
  principal that made the call; another principal presenting it is refused like an unknown handle.
- A parked call that is not resumed within `PARK_TTL_SECONDS` is cancelled upstream.
- Each retry goes through the whole pipeline again (policy is re-checked on every round).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import time
from dataclasses import dataclass, field
from typing import Final

from bastion.errors import InternalError, InvalidParams, error_response
from bastion.transports.base import JsonDict

PARK_TTL_SECONDS: Final = 600.0
"""Seconds a parked call waits for the client's retry before it is cancelled."""

AskItem = tuple[JsonDict, "asyncio.Future[JsonDict]"]


@dataclass(slots=True, kw_only=True)
class ParkedCall:
    """An upstream call in flight whose upstream is waiting for the client's input."""

    task: asyncio.Task[JsonDict]
    """The upstream request; its result is the eventual reply."""
    asks: asyncio.Queue[AskItem]
    """Server->client requests the upstream made during the call, each with the future that answers it."""
    principal: str
    """Who made the call; only they may resume it."""
    waiting: dict[str, asyncio.Future[JsonDict]] = field(default_factory=dict)
    """Input keys handed to the client, with the futures their answers resolve."""
    expires: float = 0.0


class ParkingLot:
    """Parked calls by `requestState` handle."""

    def __init__(self) -> None:
        self._calls: dict[str, ParkedCall] = {}
        self._keys = itertools.count(1)

    def take(self, handle: object, principal: str) -> ParkedCall:
        """Remove and return the parked call for a retry; unknown, expired or foreign handles are refused."""
        self._expire()
        call = self._calls.get(handle) if isinstance(handle, str) else None
        if call is None or call.principal != principal:
            raise InvalidParams("Invalid or expired requestState")
        del self._calls[handle]  # type: ignore[arg-type]
        return call

    async def wait(self, call: ParkedCall) -> JsonDict:
        """Wait for the call's reply, or park it again and return an `input_required` result."""
        getter = asyncio.ensure_future(call.asks.get())
        try:
            await asyncio.wait({call.task, getter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not getter.done():
                getter.cancel()
        if call.task.done():
            if getter.done() and not getter.cancelled():
                message, future = getter.result()
                future.set_result(
                    error_response(message.get("id"), InternalError("the call already finished"))
                )
            return call.task.result()
        message, future = getter.result()
        key = f"input-{next(self._keys)}"
        call.waiting = {key: future}
        handle = secrets.token_urlsafe(32)
        call.expires = time.monotonic() + PARK_TTL_SECONDS
        self._calls[handle] = call
        return {
            "result": {
                "resultType": "input_required",
                "requestState": handle,
                "inputRequests": {
                    key: {"method": message.get("method"), "params": message.get("params") or {}}
                },
            }
        }

    @staticmethod
    def answer(call: ParkedCall, responses: object) -> None:
        """Resolve the upstream's pending requests with the client's `inputResponses`."""
        given = responses if isinstance(responses, dict) else {}
        for key, future in call.waiting.items():
            if future.done():
                continue
            if key in given and isinstance(given[key], dict):
                future.set_result({"result": given[key]})
            else:
                future.set_result(error_response(key, InvalidParams("no input was provided")))
        call.waiting = {}

    def _expire(self) -> None:
        now = time.monotonic()
        for handle in [h for h, c in self._calls.items() if c.expires < now]:
            call = self._calls.pop(handle)
            call.task.cancel()

    def close(self) -> None:
        """Cancel every parked call (shutdown)."""
        for call in self._calls.values():
            call.task.cancel()
            with contextlib.suppress(Exception):
                call.task.exception() if call.task.done() else None
        self._calls.clear()
