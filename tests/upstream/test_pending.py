"""Correlation on one upstream connection: ids, progress tokens and server requests, without any transport."""

from __future__ import annotations

import asyncio

import pytest

from bastion.errors import UpstreamUnavailable
from bastion.transports.base import JsonDict, RequestId
from bastion.upstream.association import Isolation, Scope
from bastion.upstream.pending import Correlation, Pending

pytestmark = pytest.mark.anyio


class Session:
    """A downstream session as correlation sees it (an `Owner`)."""

    def __init__(self, session_id: str, principal: str = "alice") -> None:
        self.session_id = session_id
        self.principal_name = principal

    async def relay_request(
        self, message: JsonDict, related: RequestId | None, *, server: str = ""
    ) -> JsonDict:
        return {}

    async def relay_notification(self, message: JsonDict, related: RequestId | None) -> None:
        return None


def _pending(owner: Session | None, downstream_id: RequestId | None) -> Pending:
    return Pending(asyncio.get_running_loop().create_future(), owner, downstream_id)


async def test_each_request_gets_an_id_of_bastions_own_and_its_response_settles_exactly_it() -> None:
    table = Correlation(scope=Scope(isolation=Isolation.SHARED), transport="stdio")
    alice, bob = Session("a"), Session("b", "bob")
    first, second = _pending(alice, 1), _pending(bob, 1)  # the same client id from two sessions
    first_id, _ = table.open(first, {})
    second_id, _ = table.open(second, {})
    assert first_id != second_id
    assert table.resolve({"jsonrpc": "2.0", "id": second_id, "result": {"n": 2}})
    assert second.future.result() == {"jsonrpc": "2.0", "id": second_id, "result": {"n": 2}}
    assert not first.future.done()
    assert not table.resolve({"jsonrpc": "2.0", "id": 999, "result": {}})
    assert not table.resolve({"jsonrpc": "2.0", "id": [first_id], "result": {}})
    table.close(second_id)
    assert not table.resolve({"jsonrpc": "2.0", "id": second_id, "result": {}})
    assert table.client_calls_in_flight() == 1


async def test_a_progress_token_is_rewritten_and_maps_back_to_its_caller_until_the_call_ends() -> None:
    table = Correlation(scope=Scope(isolation=Isolation.SHARED), transport="stdio")
    alice = Session("a")
    pending = _pending(alice, 7)
    upstream_id, params = table.open(pending, {"_meta": {"progressToken": "mine"}, "name": "x"})
    token = params["_meta"]["progressToken"]
    assert token != "mine"
    assert params["name"] == "x"
    assert table.progress_route(token) == (alice, "mine", 7)
    assert table.progress_route({"unhashable": True}) is None
    table.close(upstream_id)
    assert table.progress_route(token) is None


async def test_bastions_own_requests_keep_their_progress_token_and_count_as_no_client_call() -> None:
    table = Correlation(scope=Scope(isolation=Isolation.SHARED), transport="stdio")
    _, params = table.open(_pending(None, None), {"_meta": {"progressToken": "p"}})
    assert params == {"_meta": {"progressToken": "p"}}
    assert table.calls() == []
    assert table.client_calls_in_flight() == 0


async def test_a_server_request_goes_to_the_related_call_or_is_refused_on_a_shared_connection() -> None:
    table = Correlation(scope=Scope(isolation=Isolation.SHARED), transport="streamable-http")
    alice, bob = Session("a"), Session("b", "bob")
    alice_id, _ = table.open(_pending(alice, "x"), {})
    table.open(_pending(bob, "y"), {})
    assert table.owner_of_request(alice_id) == (alice, "x")
    assert table.owner_of_request(None) == (None, None)  # two callers, nothing related: never a guess


async def test_a_session_scoped_connection_relays_to_its_own_session_even_with_nothing_in_flight() -> None:
    own = Session("own")
    scope = Scope(isolation=Isolation.SESSION, session="own", principal="alice")
    table = Correlation(scope=scope, transport="stdio", scope_owner=own)
    assert table.owner_of_request(None) == (own, None)
    assert table.owners() == {"own": own}


async def test_when_the_connection_ends_every_request_in_flight_fails_and_nothing_maps_any_more() -> None:
    table = Correlation(scope=Scope(isolation=Isolation.SHARED), transport="stdio")
    pending = _pending(Session("a"), 1)
    upstream_id, params = table.open(pending, {"_meta": {"progressToken": 5}})
    table.fail_all(UpstreamUnavailable("gone"))
    with pytest.raises(UpstreamUnavailable):
        pending.future.result()
    assert table.progress_route(params["_meta"]["progressToken"]) is None
    assert not table.resolve({"jsonrpc": "2.0", "id": upstream_id, "result": {}})
