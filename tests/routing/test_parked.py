"""State handle hijacking (MCP security best practices): a 2026-07-28 `requestState` is an opaque handle that only
the principal who made the call can redeem, once, before it expires."""

from __future__ import annotations

import asyncio

import pytest

from bastion.errors import InvalidParams
from bastion.routing import parked
from bastion.routing.parked import ParkedCall, ParkingLot
from bastion.transports.base import JsonDict

pytestmark = pytest.mark.anyio


async def _parked_call(lot: ParkingLot, principal: str) -> tuple[ParkedCall, JsonDict]:
    """An upstream call that asks the client something (as an elicitation would), parked by the lot."""
    asks: asyncio.Queue[parked.AskItem] = asyncio.Queue()

    async def upstream() -> JsonDict:
        answer: asyncio.Future[JsonDict] = asyncio.get_running_loop().create_future()
        await asks.put(({"method": "elicitation/create", "params": {"message": "sure?"}}, answer))
        return {"result": {"content": [], "answered": await answer}}

    call = ParkedCall(task=asyncio.ensure_future(upstream()), asks=asks, principal=principal)
    reply = await lot.wait(call)
    return call, reply


async def test_a_request_state_is_random_opaque_and_names_what_the_upstream_asked():
    lot = ParkingLot()
    _, first = await _parked_call(lot, "alice")
    _, second = await _parked_call(lot, "alice")
    handles = [first["result"]["requestState"], second["result"]["requestState"]]
    assert handles[0] != handles[1] and all(len(h) >= 43 for h in handles)  # 256 bits, url-safe base64
    assert "alice" not in handles[0]  # a handle, not client-readable state
    assert first["result"]["inputRequests"] == {
        "input-1": {"method": "elicitation/create", "params": {"message": "sure?"}}
    }
    lot.close()


async def test_another_principal_presenting_the_handle_is_refused_like_an_unknown_one():
    lot = ParkingLot()
    call, reply = await _parked_call(lot, "alice")
    handle = reply["result"]["requestState"]
    with pytest.raises(InvalidParams) as foreign:
        lot.take(handle, "mallory")
    with pytest.raises(InvalidParams) as unknown:
        lot.take("not-a-handle", "alice")
    assert str(foreign.value) == str(unknown.value)  # no oracle: the same answer
    assert lot.take(handle, "alice") is call  # the refusal did not burn alice's handle
    ParkingLot.answer(call, {"input-1": {"action": "accept"}})
    assert (await call.task)["result"]["answered"] == {"result": {"action": "accept"}}


async def test_a_handle_is_single_use_and_expires(monkeypatch):
    lot = ParkingLot()
    call, reply = await _parked_call(lot, "alice")
    handle = reply["result"]["requestState"]
    assert lot.take(handle, "alice") is call
    with pytest.raises(InvalidParams):
        lot.take(handle, "alice")  # replayed
    _, later = await _parked_call(lot, "alice")
    stale = later["result"]["requestState"]
    monkeypatch.setattr(parked, "PARK_TTL_SECONDS", 0.0)
    _, expiring = await _parked_call(lot, "alice")
    await asyncio.sleep(0.01)
    with pytest.raises(InvalidParams):  # expired: refused, and its call cancelled upstream
        lot.take(expiring["result"]["requestState"], "alice")
    assert lot.take(stale, "alice") is not None  # others are untouched
    call.task.cancel()
    lot.close()
