"""Every cell of the association table (upstream/association.py): transport x isolation x message kind."""

from __future__ import annotations

import pytest

from bastion.upstream.association import (
    RULES,
    TRANSPORTS,
    Call,
    Isolation,
    Kind,
    Listener,
    Scope,
    audience,
    default_isolation,
)

ALICE_CALL = Call(session="a1", principal="alice", request_id=1)
BOB_CALL = Call(session="b1", principal="bob", request_id=7)
LISTENERS = (
    Listener(session="a1", principal="alice", wants_logs=True, subscriptions=frozenset({"file:///x"})),
    Listener(session="a2", principal="alice", wants_logs=True),
    Listener(session="b1", principal="bob", wants_logs=True, subscriptions=frozenset({"file:///x"})),
)
SCOPES = {
    Isolation.SESSION: Scope(isolation=Isolation.SESSION, session="a1", principal="alice"),
    Isolation.PRINCIPAL: Scope(isolation=Isolation.PRINCIPAL, principal="alice"),
    Isolation.SHARED: Scope(isolation=Isolation.SHARED),
}
EVERYONE = {("a1", None), ("a2", None), ("b1", None)}
RELATED = ("streamable-http",)
"""Transports that relate a message to the call whose stream carried it."""

# (isolation, kind) -> expected (session, related request) pairs, for a transport that relates and one that does not.
# Scenario: alice's call 1 in session a1 is in flight (and bob's call 7 too, on a shared connection); the message
# arrives on alice's call's stream when the transport can say so.
EXPECTED: dict[tuple[Isolation, Kind], tuple[set[tuple[str, int | None]], set[tuple[str, int | None]]]] = {
    (Isolation.SESSION, Kind.REQUEST): ({("a1", 1)}, {("a1", 1)}),
    (Isolation.SESSION, Kind.PROGRESS): ({("a1", 1)}, {("a1", 1)}),
    (Isolation.SESSION, Kind.LOG): ({("a1", 1)}, {("a1", 1)}),
    (Isolation.SESSION, Kind.RESOURCE_UPDATED): ({("a1", None)}, {("a1", None)}),
    (Isolation.SESSION, Kind.LIST_CHANGED): (EVERYONE, EVERYONE),
    (Isolation.PRINCIPAL, Kind.REQUEST): ({("a1", 1)}, {("a1", 1)}),
    (Isolation.PRINCIPAL, Kind.PROGRESS): ({("a1", 1)}, {("a1", 1)}),
    (Isolation.PRINCIPAL, Kind.LOG): ({("a1", 1)}, {("a1", None), ("a2", None)}),
    (Isolation.PRINCIPAL, Kind.RESOURCE_UPDATED): ({("a1", None)}, {("a1", None)}),
    (Isolation.PRINCIPAL, Kind.LIST_CHANGED): (EVERYONE, EVERYONE),
    (Isolation.SHARED, Kind.REQUEST): ({("a1", 1)}, set()),
    (Isolation.SHARED, Kind.PROGRESS): ({("a1", 1)}, {("a1", 1)}),
    (Isolation.SHARED, Kind.LOG): ({("a1", 1)}, set()),
    (Isolation.SHARED, Kind.RESOURCE_UPDATED): ({("a1", None), ("b1", None)}, {("a1", None), ("b1", None)}),
    (Isolation.SHARED, Kind.LIST_CHANGED): (EVERYONE, EVERYONE),
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("isolation", list(Isolation))
@pytest.mark.parametrize("kind", list(Kind))
def test_each_server_to_client_message_reaches_exactly_the_audience_of_its_cell(
    transport: str, isolation: Isolation, kind: Kind
) -> None:
    relates = transport in RELATED
    in_flight = [ALICE_CALL] if isolation is not Isolation.SHARED else [ALICE_CALL, BOB_CALL]
    targets = audience(
        RULES[(transport, isolation, kind)],
        scope=SCOPES[isolation],
        related=ALICE_CALL if relates else None,
        in_flight=in_flight,
        listeners=LISTENERS,
        uri="file:///x",
        token_owner=ALICE_CALL,
    )
    with_related, without = EXPECTED[(isolation, kind)]
    assert {(t.session, t.related) for t in targets} == (with_related if relates else without)
    assert len(targets) == len({t.session for t in targets})  # never twice to one session


def test_the_table_has_a_cell_for_every_transport_isolation_and_kind() -> None:
    assert len(RULES) == len(TRANSPORTS) * len(Isolation) * len(Kind)


def test_a_principal_scoped_request_with_calls_of_two_sessions_in_flight_is_refused() -> None:
    other = Call(session="a2", principal="alice", request_id=3)
    targets = audience(
        RULES[("stdio", Isolation.PRINCIPAL, Kind.REQUEST)],
        scope=SCOPES[Isolation.PRINCIPAL],
        related=None,
        in_flight=[ALICE_CALL, other],
    )
    assert targets == ()


def test_a_principal_scoped_request_with_several_calls_of_one_session_goes_to_that_session() -> None:
    second = Call(session="a1", principal="alice", request_id=2)
    targets = audience(
        RULES[("stdio", Isolation.PRINCIPAL, Kind.REQUEST)],
        scope=SCOPES[Isolation.PRINCIPAL],
        related=None,
        in_flight=[ALICE_CALL, second],
    )
    assert [(t.session, t.related) for t in targets] == [("a1", None)]


def test_http_upstreams_default_to_a_session_each_and_stdio_to_a_process_per_principal() -> None:
    assert default_isolation("streamable-http") is Isolation.SESSION
    assert default_isolation("sse") is Isolation.SESSION
    assert default_isolation("stdio") is Isolation.PRINCIPAL
