"""The sans-IO session core, table by table: no event loop, no transport, no gateway."""

from __future__ import annotations

import pytest

from bastion.errors import InvalidParams, InvalidRequest, MethodNotFound, RateLimited
from bastion.protocol import versions
from bastion.protocol.session import (
    SENDS_NOTIFICATIONS,
    SERVES_REQUESTS,
    TRANSITIONS,
    Era,
    Event,
    Outcome,
    Phase,
    SessionState,
    Step,
    era_of,
    hello_of_envelope,
    hello_of_initialize,
    relay_refusal,
)

MODERN = versions.MODERN_VERSIONS[0]
ENVELOPE = {"_meta": {versions.META_PROTOCOL_VERSION: MODERN}}


def state(phase: Phase = Phase.NEW, *, stateless: bool = False, limit: int = 4) -> SessionState[str, str]:
    core: SessionState[str, str] = SessionState(stateless=stateless, max_in_flight=limit)
    core.phase = phase
    return core


# -- handshake transitions -------------------------------------------------------------------------------------

HANDSHAKE_ROWS = [
    (Phase.NEW, Event.INITIALIZE, Phase.ANSWERED, Outcome.ACCEPT),
    (Phase.NEW, Event.INITIALIZED, Phase.CONFIRMED, Outcome.ACCEPT),
    (Phase.NEW, Event.RESTORE, Phase.READY, Outcome.ACCEPT),
    (Phase.NEW, Event.CLOSE, Phase.CLOSED, Outcome.ACCEPT),
    (Phase.ANSWERED, Event.INITIALIZE, Phase.ANSWERED, Outcome.REFUSE),
    (Phase.ANSWERED, Event.INITIALIZED, Phase.READY, Outcome.ACCEPT),
    (Phase.ANSWERED, Event.RESTORE, Phase.READY, Outcome.ACCEPT),
    (Phase.ANSWERED, Event.CLOSE, Phase.CLOSED, Outcome.ACCEPT),
    (Phase.CONFIRMED, Event.INITIALIZE, Phase.READY, Outcome.ACCEPT),
    (Phase.CONFIRMED, Event.INITIALIZED, Phase.CONFIRMED, Outcome.IGNORE),
    (Phase.CONFIRMED, Event.RESTORE, Phase.READY, Outcome.ACCEPT),
    (Phase.CONFIRMED, Event.CLOSE, Phase.CLOSED, Outcome.ACCEPT),
    (Phase.READY, Event.INITIALIZE, Phase.READY, Outcome.REFUSE),
    (Phase.READY, Event.INITIALIZED, Phase.READY, Outcome.IGNORE),
    (Phase.READY, Event.RESTORE, Phase.READY, Outcome.IGNORE),
    (Phase.READY, Event.CLOSE, Phase.CLOSED, Outcome.ACCEPT),
    (Phase.CLOSED, Event.INITIALIZE, Phase.CLOSED, Outcome.IGNORE),
    (Phase.CLOSED, Event.INITIALIZED, Phase.CLOSED, Outcome.IGNORE),
    (Phase.CLOSED, Event.RESTORE, Phase.CLOSED, Outcome.IGNORE),
    (Phase.CLOSED, Event.CLOSE, Phase.CLOSED, Outcome.IGNORE),
]


@pytest.mark.parametrize(("phase", "event", "after", "outcome"), HANDSHAKE_ROWS)
def test_each_handshake_event_moves_the_session_as_its_row_says(
    phase: Phase, event: Event, after: Phase, outcome: Outcome
) -> None:
    core = state(phase)
    assert core.fire(event) is outcome
    assert core.phase is after


def test_the_transition_table_has_a_row_for_every_phase_and_event() -> None:
    assert set(TRANSITIONS) == {(p, e) for p in Phase for e in Event}
    assert {(p, e, a, o) for (p, e), (a, o) in TRANSITIONS.items()} == set(HANDSHAKE_ROWS)


def test_a_second_initialize_is_refused_as_an_invalid_request_and_keeps_the_phase() -> None:
    core = state()
    core.initialize()
    with pytest.raises(InvalidRequest):
        core.initialize()
    assert core.phase is Phase.ANSWERED


@pytest.mark.parametrize("phase", list(Phase))
def test_notifications_go_out_only_once_the_client_confirmed_the_handshake(phase: Phase) -> None:
    core = state(phase)
    assert core.initialized is (phase in SENDS_NOTIFICATIONS)
    sent = core.outgoing("notifications/tools/list_changed", None)
    assert (sent is not None) is (phase in SENDS_NOTIFICATIONS)


# -- which step serves a request -------------------------------------------------------------------------------

STEP_ROWS = [
    # (phase, stateless, method, era, step or refusal)
    (Phase.NEW, False, "initialize", Era.HANDSHAKE, Step.INITIALIZE),
    (Phase.NEW, False, "ping", Era.HANDSHAKE, Step.PING),
    (Phase.NEW, False, "server/discover", Era.HANDSHAKE, Step.DISCOVER),
    (Phase.NEW, False, "tools/list", Era.HANDSHAKE, InvalidRequest),
    (Phase.NEW, False, "tools/call", Era.HANDSHAKE, InvalidRequest),
    (Phase.NEW, False, "no/such", Era.HANDSHAKE, InvalidRequest),
    (Phase.NEW, True, "tools/list", Era.HANDSHAKE, Step.LIST),
    (Phase.NEW, False, "tools/list", Era.MODERN, Step.LIST),
    (Phase.NEW, False, "tools/call", Era.MODERN, Step.CALL),
    (Phase.NEW, False, "subscriptions/listen", Era.MODERN, Step.LISTEN),
    (Phase.NEW, True, "subscriptions/listen", Era.MODERN, MethodNotFound),
    (Phase.NEW, False, "initialize", Era.MODERN, MethodNotFound),
    (Phase.NEW, False, "ping", Era.MODERN, MethodNotFound),
    (Phase.READY, False, "logging/setLevel", Era.MODERN, MethodNotFound),
    (Phase.READY, False, "resources/subscribe", Era.MODERN, MethodNotFound),
    (Phase.ANSWERED, False, "tools/list", Era.HANDSHAKE, Step.LIST),
    (Phase.CONFIRMED, False, "tools/list", Era.HANDSHAKE, Step.LIST),
    (Phase.READY, False, "tools/call", Era.HANDSHAKE, Step.CALL),
    (Phase.READY, False, "prompts/get", Era.HANDSHAKE, Step.CALL),
    (Phase.READY, False, "resources/read", Era.HANDSHAKE, Step.CALL),
    (Phase.READY, False, "completion/complete", Era.HANDSHAKE, Step.CALL),
    (Phase.READY, False, "tasks/get", Era.HANDSHAKE, Step.CALL),
    (Phase.READY, False, "tasks/list", Era.HANDSHAKE, Step.LIST),
    (Phase.READY, False, "logging/setLevel", Era.HANDSHAKE, Step.SET_LOG_LEVEL),
    (Phase.READY, False, "initialize", Era.HANDSHAKE, Step.INITIALIZE),
    (Phase.READY, False, "subscriptions/listen", Era.HANDSHAKE, MethodNotFound),
    (Phase.READY, False, "no/such", Era.HANDSHAKE, MethodNotFound),
    (Phase.READY, False, "no/such", Era.MODERN, MethodNotFound),
]


@pytest.mark.parametrize(("phase", "stateless", "method", "era", "expected"), STEP_ROWS)
def test_each_request_is_served_or_refused_as_its_row_says(
    phase: Phase, stateless: bool, method: str, era: Era, expected: Step | type[Exception]
) -> None:
    core = state(phase, stateless=stateless)
    if isinstance(expected, Step):
        assert core.step(method, era) is expected
    else:
        with pytest.raises(expected):
            core.step(method, era)


# -- era -------------------------------------------------------------------------------------------------------


def test_a_request_carrying_the_envelope_is_of_the_modern_era_and_any_other_of_the_handshake_era() -> None:
    assert era_of(ENVELOPE) is Era.MODERN
    assert era_of({}) is Era.HANDSHAKE
    assert era_of({"_meta": {"progressToken": 1}}) is Era.HANDSHAKE
    assert era_of({"_meta": "not an object"}) is Era.HANDSHAKE


def test_the_envelope_is_adopted_and_its_absent_members_keep_what_is_known() -> None:
    full = {
        "_meta": {
            versions.META_PROTOCOL_VERSION: MODERN,
            versions.META_CLIENT_CAPABILITIES: {"sampling": {}},
            versions.META_CLIENT_INFO: {"name": "n" * 300, "version": "1.0"},
        }
    }
    hello = hello_of_envelope(full)
    assert hello is not None
    assert (hello.protocol_version, hello.capabilities, hello.client_version) == (
        MODERN,
        {"sampling": {}},
        "1.0",
    )
    assert hello.client_name == "n" * 200
    bare = hello_of_envelope(ENVELOPE)
    assert bare is not None
    assert (bare.capabilities, bare.client_name, bare.client_version) == (None, None, None)
    assert hello_of_envelope({}) is None  # handshake era: no envelope, nothing adopted
    assert hello_of_envelope({"_meta": {"progressToken": 1}}) is None


def test_initialize_answers_with_the_asked_handshake_version_or_the_newest_one() -> None:
    asked = hello_of_initialize({"protocolVersion": "2025-03-26", "capabilities": {"roots": {}}})
    assert (asked.protocol_version, asked.capabilities, asked.client_name) == (
        "2025-03-26",
        {"roots": {}},
        "",
    )
    unknown = hello_of_initialize({"protocolVersion": "1999-01-01", "capabilities": "junk"})
    assert (unknown.protocol_version, unknown.capabilities) == (versions.LATEST_HANDSHAKE, {})


@pytest.mark.parametrize(
    ("method", "era", "capabilities", "wants_logs", "needed"),
    [
        ("tools/call", Era.MODERN, {"sampling": {}}, True, False),
        ("tools/call", Era.HANDSHAKE, {}, False, False),
        ("tools/call", Era.HANDSHAKE, {"elicitation": {}}, False, True),
        ("tools/call", Era.HANDSHAKE, {}, True, True),
        ("resources/subscribe", Era.HANDSHAKE, {}, False, True),
        ("logging/setLevel", Era.HANDSHAKE, {}, False, True),
    ],
)
def test_a_call_needs_a_handshake_era_upstream_session_only_for_what_the_modern_era_cannot_carry(
    method: str, era: Era, capabilities: dict[str, object], wants_logs: bool, needed: bool
) -> None:
    core = state(Phase.READY)
    if wants_logs:
        core.set_log_level("info")
    assert core.needs_handshake_era(method, era, capabilities) is needed


# -- requests in flight and cancellation -----------------------------------------------------------------------


def test_a_duplicate_id_in_flight_is_refused_and_free_again_once_finished() -> None:
    core = state(Phase.READY)
    assert core.admit(1) is None
    core.begin(1, "task-1")
    assert isinstance(core.admit(1), InvalidRequest)
    assert core.admit("1") is None  # "1" and 1 are different ids
    core.finish(1)
    assert core.admit(1) is None


def test_more_requests_than_the_limit_at_once_are_rate_limited() -> None:
    core = state(Phase.READY, limit=2)
    for request_id in (1, 2):
        core.begin(request_id, f"task-{request_id}")
    refusal = core.admit(3)
    assert isinstance(refusal, RateLimited)
    assert refusal.to_jsonrpc_error()["data"] == {"reason": "rate_limited", "retryAfter": 1}
    assert isinstance(core.admit(1), InvalidRequest)  # a duplicate is named as such, even at the limit


@pytest.mark.parametrize("request_id", [7, "unknown", None, True, {"id": 1}, [1]])
def test_cancelling_an_id_that_is_not_in_flight_is_ignored(request_id: object) -> None:
    core = state(Phase.READY)
    core.begin(1, "task-1")
    assert core.cancel(request_id) is None
    assert core.handles() == ["task-1"]


def test_cancelling_an_id_in_flight_names_its_handle_and_a_finished_one_is_ignored() -> None:
    core = state(Phase.READY)
    core.begin("a", "task-a")
    core.target("a", "calc", "add")
    assert core.cancel("a") == "task-a"
    assert core.target_of("a") == ("calc", "add")
    core.finish("a")
    assert core.cancel("a") is None
    assert core.target_of("a") is None
    assert not core.in_flight("a")


# -- relays: ids of Bastion's own ------------------------------------------------------------------------------


def test_a_relayed_request_gets_an_id_of_bastions_own_and_its_answer_settles_it_exactly_once() -> None:
    core = state(Phase.READY)
    first, second = core.open_relay("future-1"), core.open_relay("future-2")
    assert (first, second) == ("bastion-1", "bastion-2")
    assert core.settle_relay({"jsonrpc": "2.0", "id": second, "result": {}}) == "future-2"
    assert core.settle_relay({"jsonrpc": "2.0", "id": second, "result": {}}) is None
    assert core.settle_relay({"jsonrpc": "2.0", "id": 1, "result": {}}) is None
    assert core.settle_relay({"jsonrpc": "2.0", "id": ["x"], "result": {}}) is None
    assert core.drain_relays() == ["future-1"]
    assert core.drain_relays() == []


@pytest.mark.parametrize(
    ("method", "capabilities", "stateless", "refused"),
    [
        ("sampling/createMessage", {"sampling": {}}, False, False),
        ("sampling/createMessage", {}, False, True),
        ("elicitation/create", {"sampling": {}}, False, True),
        ("roots/list", {"roots": {}}, True, True),
        ("ping", {}, False, False),
    ],
)
def test_a_server_request_is_refused_when_the_client_cannot_receive_it(
    method: str, capabilities: dict[str, object], stateless: bool, refused: bool
) -> None:
    refusal = relay_refusal(method, capabilities, stateless=stateless)
    assert (refusal is not None) is refused
    if refusal is not None:
        assert isinstance(refusal, MethodNotFound)


# -- subscriptions, lists, logs --------------------------------------------------------------------------------


def test_list_changed_for_a_fetched_list_goes_once_until_the_client_fetches_it_again() -> None:
    core = state(Phase.READY)
    changed = "notifications/tools/list_changed"
    assert core.outgoing(changed, None) is not None  # never fetched: every notice goes
    core.listed("tools/list")
    assert core.outgoing(changed, None) is not None
    assert core.outgoing(changed, None) is None
    core.listed("tools/list")
    assert core.outgoing(changed, None) is not None


def test_a_stateless_session_gets_no_session_notifications() -> None:
    core = state(Phase.READY, stateless=True)
    assert core.outgoing("notifications/resources/updated", {"uri": "file:///a"}) is None


def test_an_open_listen_sends_only_what_it_asked_for_stamped_and_a_second_one_is_refused() -> None:
    core = state(Phase.NEW)
    listen, uris = core.begin_listen(
        9, {"notifications": {"toolsListChanged": True, "resourceSubscriptions": ["file:///a", 3]}}
    )
    assert uris == ["file:///a"]
    listen.uris.add("file:///a")
    core.listen = listen
    with pytest.raises(InvalidRequest):
        core.begin_listen(10, {})
    stamped = core.outgoing("notifications/tools/list_changed", None)
    assert stamped is not None
    assert stamped["params"]["_meta"] == {"io.modelcontextprotocol/subscriptionId": 9}
    assert core.outgoing("notifications/prompts/list_changed", None) is None
    assert core.outgoing("notifications/resources/updated", {"uri": "file:///b"}) is None
    assert core.outgoing("notifications/resources/updated", {"uri": "file:///a"}) is not None


def test_subscriptions_follow_successful_subscribe_and_unsubscribe_calls() -> None:
    core = state(Phase.READY)
    core.after_call("resources/subscribe", {"uri": "file:///a"})
    core.after_call("resources/subscribe", {"uri": 5})
    assert core.subscriptions == {"file:///a"}
    core.after_call("resources/unsubscribe", {"uri": "file:///a"})
    assert core.subscriptions == set()


@pytest.mark.parametrize(
    ("level", "message_level", "accepted"),
    [
        (None, "emergency", False),  # no logging/setLevel yet: no log messages at all
        ("info", "info", True),
        ("info", "debug", False),
        ("warning", "error", True),
        ("warning", "notice", False),
        ("debug", "bogus", False),
    ],
)
def test_log_messages_pass_only_at_or_above_the_level_the_client_set(
    level: str | None, message_level: str, accepted: bool
) -> None:
    core = state(Phase.READY)
    if level is not None:
        core.set_log_level(core.check_log_level(level))
    assert core.accepts_log({"level": message_level}) is accepted


@pytest.mark.parametrize("level", ["verbose", None, 3, "INFO"])
def test_a_log_level_outside_rfc_5424_is_invalid_params(level: object) -> None:
    with pytest.raises(InvalidParams):
        SessionState.check_log_level(level)


def test_requests_beyond_initialize_are_served_exactly_in_the_phases_after_it() -> None:
    assert frozenset({Phase.ANSWERED, Phase.CONFIRMED, Phase.READY}) == SERVES_REQUESTS
