"""Fair limits: one principal or one client address cannot take the shared session capacity from the others."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.auth.principal import Principal
from bastion.config import parse_config
from bastion.core.fair_limits import FairLimits
from bastion.core.gateway import Gateway
from bastion.errors import RateLimited

pytestmark = pytest.mark.anyio

ALICE = Principal(name="alice", method="api_key", credential="api_key:a")
BOB = Principal(name="bob", method="api_key", credential="api_key:b")


class _Nowhere:
    async def send(self, message: Any, related: Any = None) -> None:
        return None


def _gateway(**limits: Any) -> Gateway:
    return Gateway(parse_config({"servers": {}, "limits": limits}))


async def test_a_principal_at_its_session_cap_is_refused_while_another_still_gets_sessions() -> None:
    gateway = _gateway(max_sessions=10, max_sessions_per_principal=3)
    opened = [
        await gateway.open_session(transport="memory", outbound=_Nowhere(), principal=ALICE) for _ in range(3)
    ]
    with pytest.raises(RateLimited) as info:
        await gateway.open_session(transport="memory", outbound=_Nowhere(), principal=ALICE)
    assert info.value.data["scope"] == "principal" and info.value.data["limit"] == 3
    assert await gateway.open_session(transport="memory", outbound=_Nowhere(), principal=BOB)
    await opened[0].aclose()  # a closed session frees its slot
    assert await gateway.open_session(transport="memory", outbound=_Nowhere(), principal=ALICE)


async def test_stateless_requests_open_no_session_and_are_not_counted() -> None:
    gateway = _gateway(max_sessions_per_principal=1, initialize_per_minute_per_principal=1)
    for _ in range(5):
        await gateway.open_session(transport="memory", outbound=_Nowhere(), principal=ALICE, stateless=True)
    assert await gateway.open_session(transport="memory", outbound=_Nowhere(), principal=ALICE)


def test_opening_sessions_is_rate_limited_per_principal_and_refills_over_a_minute() -> None:
    now = [0.0]
    limits = parse_config({"limits": {"initialize_per_minute_per_principal": 2}}).limits
    fair = FairLimits(limits, clock=lambda: now[0])
    fair.admit("alice", "")
    fair.admit("alice", "")
    with pytest.raises(RateLimited) as info:
        fair.admit("alice", "")
    assert info.value.data == {"retryAfter": 30, "limit": 2, "scope": "principal"}
    fair.admit("bob", "")  # another principal has its own bucket
    now[0] = 30.0
    fair.admit("alice", "")


def test_opening_sessions_is_rate_limited_per_client_address_whoever_authenticates() -> None:
    limits = parse_config({"limits": {"initialize_per_minute_per_address": 2}}).limits
    fair = FairLimits(limits, clock=lambda: 0.0)
    fair.admit("alice", "10.0.0.7:50001")
    fair.admit("bob", "10.0.0.7:50002")
    with pytest.raises(RateLimited) as info:
        fair.admit("carol", "10.0.0.7:50003")
    assert info.value.data["scope"] == "address"
    fair.admit("carol", "10.0.0.8:50003")


def test_a_refused_opening_takes_no_token_from_the_other_bucket() -> None:
    limits = parse_config({"limits": {"initialize_per_minute_per_address": 1}}).limits
    fair = FairLimits(limits, clock=lambda: 0.0)
    fair.admit("alice", "10.0.0.7:1")
    with pytest.raises(RateLimited):
        fair.admit("alice", "10.0.0.7:2")
    fair.admit("alice", "10.0.0.9:1")  # alice's own bucket was not charged by the refusal
