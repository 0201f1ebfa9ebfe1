"""The circuit breaker's state machine, the reconnect backoff and the throttled protocol-error reports, without I/O
or clocks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bastion.config import parse_config
from bastion.errors import ParseError
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.upstream import health
from bastion.upstream.breaker import TRANSITIONS, Backoff, CircuitBreaker, CircuitState
from bastion.upstream.config import BreakerConfig
from bastion.upstream.health import ProtocolErrorReporter


def breaker(**config: object) -> CircuitBreaker:
    return CircuitBreaker(BreakerConfig(**{"failures": 3, "cooldown_seconds": 5, **config}))  # type: ignore[arg-type]


def test_consecutive_failures_open_the_circuit_and_a_success_resets_the_count():
    b = breaker()
    assert not b.record_failure(0, "upstream_timeout") and not b.record_failure(1, "upstream_timeout")
    assert not b.record_success()
    assert b.failures == 0
    assert not b.record_failure(2, "upstream_timeout") and not b.record_failure(3, "upstream_timeout")
    assert b.record_failure(4, "transport")
    assert b.state is CircuitState.OPEN and b.reason == "transport" and b.trips == 1 and not b.closed


def test_an_open_circuit_waits_out_its_cooldown_before_one_probe():
    b = breaker(failures=1)
    b.record_failure(10, "upstream_timeout")
    assert b.retry_in(12) == 3
    assert not b.try_half_open(14.9) and b.state is CircuitState.OPEN
    assert not b.record_success()  # a late success of an old call decides nothing
    assert b.state is CircuitState.OPEN
    assert b.try_half_open(15)
    assert b.state is CircuitState.HALF_OPEN and not b.closed
    assert b.record_success()
    assert b.state is CircuitState.CLOSED and b.reason == "" and b.failures == 0


def test_a_failed_probe_reopens_with_the_cooldown_doubled_up_to_its_cap():
    b = breaker(failures=1, cooldown_seconds=5, max_cooldown_seconds=12)
    b.record_failure(0, "upstream_timeout")
    cooldowns = []
    now = 0.0
    for _ in range(4):
        now += b.retry_in(now)
        assert b.try_half_open(now)
        assert not b.record_failure(now, "probe")  # still unavailable: no change to announce
        cooldowns.append(b.retry_in(now))
    assert cooldowns == [10, 12, 12, 12]
    assert b.trips == 1
    now += b.retry_in(now)
    b.try_half_open(now)
    b.record_success()
    b.record_failure(now, "upstream_timeout")
    assert b.retry_in(now) == 5  # a success resets the cooldown


def test_a_disabled_breaker_never_opens_and_reset_closes_any_circuit():
    off = breaker(enabled=False, failures=1)
    assert not any(off.record_failure(t, "upstream_timeout") for t in range(10)) and off.closed
    on = breaker(failures=1)
    on.record_failure(0, "upstream_timeout")
    assert on.reset() and on.closed and on.retry_in(0) == 0
    assert not on.reset()


def test_the_transition_table_names_every_state_and_describe_is_json_ready():
    states = {s for pair in TRANSITIONS for s in (pair[0], TRANSITIONS[pair])}
    assert states == {str(s) for s in CircuitState}
    b = breaker(failures=1)
    b.record_failure(1, "upstream_timeout")
    assert b.describe(2) == {
        "state": "open",
        "failures": 1,
        "reason": "upstream_timeout",
        "trips": 1,
        "retryIn": 4,
    }


def test_breaker_and_health_settings_are_validated_per_server():
    config = parse_config(
        {
            "servers": {
                "s": {
                    "transport": "stdio",
                    "command": "x",
                    "max_concurrent": 4,
                    "health": {"interval_seconds": 0},
                    "breaker": {"failures": 2},
                }
            }
        }
    )
    server = config.servers["s"]
    assert server.max_concurrent == 4 and server.health.interval_seconds == 0 and server.breaker.failures == 2
    with pytest.raises(ValidationError):
        BreakerConfig(cooldown_seconds=10, max_cooldown_seconds=5)


async def test_protocol_errors_of_an_upstream_are_reported_at_most_once_per_window():
    clock = [1000.0]
    notices: list[Notice] = []

    async def emit(notice: Notice) -> None:
        notices.append(notice)

    report = ProtocolErrorReporter("flaky", emit, clock=lambda: clock[0])
    for _ in range(5):
        await report(ParseError("invalid JSON"))
    clock[0] += health.REPORT_WINDOW_SECONDS
    await report(ParseError("invalid JSON"))
    assert [(n.kind, n.server, n.detail["count"]) for n in notices] == [
        (NoticeKind.PROTOCOL_ERROR, "flaky", 1),
        (NoticeKind.PROTOCOL_ERROR, "flaky", 5),
    ]
    assert notices[0].detail == {"reason": "parse_error", "source": "upstream", "count": 1}
    assert report.total == 6 and report.pending == 0


def test_reconnect_delays_double_up_to_the_cap_with_jitter_and_start_afresh_after_a_reset():
    middle = Backoff(0.5, 30.0, rng=lambda: 0.5)  # a jitter factor of exactly 1
    assert [middle.next() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    middle.reset()
    assert middle.next() == 0.5
    low, high = Backoff(1.0, 8.0, rng=lambda: 0.0), Backoff(1.0, 8.0, rng=lambda: 0.75)
    assert [low.next() for _ in range(5)] == [0.5, 1, 2, 4, 4]  # jitter scales each step by [0.5, 1.5)
    assert [high.next() for _ in range(5)] == [1.25, 2.5, 5, 10, 10]
