"""Anomaly detection: each kind raises exactly one alert per cool-down, on the embedded store and on Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.auth.principal import Principal
from bastion.guard.finding import Finding
from bastion.pipeline.exchange import Exchange, SessionInfo
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.pipeline.verdicts import Decision
from bastion.state import EmbeddedStateStore, StateStore
from bastion.state.redis_store import RedisStateStore
from bastion.telemetry.anomaly import AnomalyDetector
from bastion.telemetry.config import AnomalyConfig, TelemetryConfig
from bastion.testing import client_transport, running_gateway
from tests.peers import free_port
from tests.servers import calc
from tests.telemetry.conftest import Clock, attach, serve_asgi

pytestmark = pytest.mark.anyio

REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET_ARGUMENT = "sk-live-arg-5566778899"
ALICE = Principal(name="alice", roles=frozenset({"dev"}), method="api_key")


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    if request.param == "embedded":
        async with EmbeddedStateStore(tmp_path / "state.db") as s:
            yield s
        return
    prefix = f"bastion-test-{uuid.uuid4().hex}:"
    async with RedisStateStore(REDIS_URL, key_prefix=prefix) as s:
        yield s
        keys = [k async for k in s._redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await s._redis.delete(*keys)


class Alerts:
    """Where the detector emits (in a gateway: `Gateway.emit`)."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    async def __call__(self, notice: Notice) -> None:
        self.notices.append(notice)

    def kinds(self) -> list[str]:
        return [n.detail["alert"] for n in self.notices]


def detector(store: StateStore, clock: Clock, **overrides: Any) -> tuple[AnomalyDetector, Alerts]:
    base: dict[str, Any] = {
        "cooldown_seconds": 600,
        "rate_spike": {"enabled": False},
        "new_tool": {"enabled": False},
        "burst": {"enabled": False},
        "large_result": {"enabled": False},
        "recon": {"enabled": False},
    }
    base.update(overrides)
    alerts = Alerts()
    return AnomalyDetector(AnomalyConfig.model_validate(base), store, alerts, clock=clock), alerts


def exchange(
    *,
    principal: Principal = ALICE,
    server: str | None = "calc",
    tool: str | None = "add",
    outcome: str = "allow",
    result: dict[str, Any] | None = None,
    findings: int = 0,
) -> Exchange:
    info = SessionInfo(session_id="session-" + "x" * 30, transport="memory", principal=principal)
    ex = Exchange(
        session=info,
        method="tools/call",
        params={"name": f"{server}__{tool}", "arguments": {"q": SECRET_ARGUMENT}},
        server=server,
        target=tool,
    )
    ex.outcome = outcome
    ex.result = result if result is not None else {"content": [{"type": "text", "text": "ok"}]}
    if findings:
        found = tuple(Finding(detector="secrets", type="api_key") for _ in range(findings))
        ex.decisions.append(Decision(stage="guard", phase="request", outcome="flag", findings=found))
    return ex


async def feed(det: AnomalyDetector, *exchanges: Exchange) -> None:
    for ex in exchanges:
        await det.on_exchange(ex)
    await det.flush()


async def test_a_call_rate_spike_over_the_principals_own_history_alerts_once(store: StateStore) -> None:
    clock = Clock(6000.0)
    det, alerts = detector(
        store, clock, rate_spike={"k": 3, "min_calls": 10, "warmup_windows": 3, "alpha": 0.3}
    )
    for _ in range(6):  # six quiet windows: 2 calls a minute
        await feed(det, exchange(), exchange())
        clock.advance(60)
    assert alerts.notices == []
    for _ in range(40):  # then a burst in one window
        await feed(det, exchange())
    assert alerts.kinds() == ["rate_spike"]
    (notice,) = alerts.notices
    assert notice.kind is NoticeKind.ALERT and notice.severity == "warning" and notice.principal == "alice"
    assert notice.detail["calls"] == 10 > notice.detail["threshold"]  # the first call past both bars
    await det.aclose()


async def test_a_new_tool_after_the_warm_up_alerts_once_and_tools_learnt_in_warm_up_do_not(
    store: StateStore,
) -> None:
    clock = Clock()
    det, alerts = detector(store, clock, new_tool={"warmup_seconds": 100})
    await feed(det, exchange(tool="add"))
    clock.advance(50)
    await feed(det, exchange(tool="echo"))  # still warming up: learnt silently
    clock.advance(100)
    await feed(det, exchange(tool="add"), exchange(tool="echo"))
    assert alerts.notices == []
    await feed(det, exchange(tool="greet"), exchange(tool="sleep"), exchange(tool="greet"))
    assert alerts.kinds() == ["new_tool"]
    assert alerts.notices[0].detail["tool"] == "calc__greet"
    await feed(det, exchange(tool="add", outcome="deny", principal=Principal(name="bob")))
    assert len(alerts.notices) == 1  # bob is new: warming up
    await det.aclose()


async def test_a_burst_of_denials_or_findings_alerts_once_per_cool_down(store: StateStore) -> None:
    clock = Clock()
    det, alerts = detector(store, clock, burst={"threshold": 4, "window_seconds": 60}, cooldown_seconds=300)
    await feed(det, exchange(outcome="deny"), exchange(outcome="deny"), exchange(findings=2))
    assert alerts.notices == []
    clock.advance(10)
    await feed(det, exchange(outcome="deny"), exchange(outcome="deny"), exchange(findings=1))
    assert alerts.kinds() == ["denial_burst"]
    assert alerts.notices[0].severity == "critical"
    assert alerts.notices[0].detail["denials"] == 3 and alerts.notices[0].detail["findings"] == 2
    clock.advance(301)  # past the cool-down: a fresh burst alerts again
    await feed(det, *[exchange(outcome="deny") for _ in range(4)])
    assert alerts.kinds() == ["denial_burst", "denial_burst"]
    await det.aclose()


async def test_an_unusually_large_result_alerts_once(store: StateStore) -> None:
    clock = Clock()
    det, alerts = detector(store, clock, large_result={"min_bytes": 2000, "factor": 5, "warmup_results": 3})
    small = {"content": [{"type": "text", "text": "x" * 100}]}
    big = {"content": [{"type": "text", "text": "y" * 5000}]}
    await feed(det, *[exchange(result=small) for _ in range(5)])
    await feed(det, exchange(result=big), exchange(result=big))
    assert alerts.kinds() == ["large_result"]
    assert alerts.notices[0].detail["bytes"] == 5000  # the text it carried
    assert SECRET_ARGUMENT not in repr(alerts.notices)
    await det.aclose()


async def test_calls_to_many_servers_in_a_short_window_alert_once(store: StateStore) -> None:
    clock = Clock()
    det, alerts = detector(store, clock, recon={"servers": 3, "window_seconds": 60})
    await feed(det, exchange(server="a"), exchange(server="b"))
    clock.advance(61)
    await feed(det, exchange(server="c"), exchange(server="d"))  # a and b are out of the window
    assert alerts.notices == []
    await feed(det, exchange(server="e"), exchange(server="f"))
    assert alerts.kinds() == ["recon"]
    assert alerts.notices[0].detail["servers"] == ["c", "d", "e"]
    await det.aclose()


@pytest.mark.integration
async def test_replicas_sharing_redis_share_the_cool_down() -> None:
    prefix = f"bastion-test-{uuid.uuid4().hex}:"
    async with (
        RedisStateStore(REDIS_URL, key_prefix=prefix) as one,
        RedisStateStore(REDIS_URL, key_prefix=prefix) as two,
    ):
        clock = Clock()
        first, alerts_one = detector(one, clock, recon={"servers": 2})
        second, alerts_two = detector(two, clock, recon={"servers": 2})
        await feed(first, exchange(server="a"), exchange(server="b"))
        await feed(second, exchange(server="c"), exchange(server="d"))
        assert alerts_one.kinds() == ["recon"] and alerts_two.notices == []
        await first.aclose()
        await second.aclose()
        keys = [k async for k in one._redis.scan_iter(match=f"{prefix}*")]
        assert keys and all(b"alice" not in (k if isinstance(k, bytes) else k.encode()) for k in keys)
        await one._redis.delete(*keys)


@pytest.mark.integration
async def test_a_store_outage_never_fails_a_call_and_is_counted() -> None:
    dead = RedisStateStore(f"redis://127.0.0.1:{free_port()}/0", key_prefix="x:", timeout_seconds=0.5)
    async with dead:
        det, alerts = detector(dead, Clock(), recon={"servers": 2})
        await feed(det, exchange(server="a"), exchange(server="b"))
        assert det.failures == 2 and alerts.notices == []
        await det.aclose()


async def test_a_full_queue_skips_exchanges_instead_of_waiting(tmp_path: Path) -> None:
    async with EmbeddedStateStore(tmp_path / "s.db") as s:
        det = AnomalyDetector(AnomalyConfig(queue_size=2), s, Alerts(), clock=Clock())
        for _ in range(5):
            await det.on_exchange(exchange())  # the worker has not run yet: only two fit
        assert det.skipped == 3
        await det.flush()
        await det.aclose()


@pytest.mark.integration
async def test_alerts_through_a_gateway_reach_notice_observers_metrics_and_a_real_webhook() -> None:
    received: list[tuple[dict[str, str], Any]] = []

    async def hook(request: Request) -> Response:
        received.append((dict(request.headers), await request.json()))
        return Response(status_code=204)

    async with serve_asgi(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        config = TelemetryConfig.model_validate(
            {
                "anomaly": {
                    "recon": {"servers": 2},
                    "webhook": {"url": f"{base}/hook", "headers": {"x-hook-secret": "hook-secret-value"}},
                }
            }
        )
        notices: list[Notice] = []

        class Feed:
            async def on_notice(self, notice: Notice) -> None:
                notices.append(notice)

        async with running_gateway({"calc": calc.build(), "other": calc.build("other")}) as gw:
            gw.notice_observers.append(Feed())
            telemetry = attach(gw, config)
            assert telemetry.anomaly is not None and telemetry.metrics is not None
            async with Client(client_transport(gw, principal=ALICE), mode="legacy") as client:
                await client.call_tool("calc__echo", {"text": SECRET_ARGUMENT})
                await client.call_tool("other__echo", {"text": SECRET_ARGUMENT})
                await client.call_tool("calc__add", {"a": 1, "b": 2})
            await telemetry.anomaly.flush()
            metrics = telemetry.metrics.render()[0].decode()
    alerts = [n for n in notices if n.kind is NoticeKind.ALERT]
    assert [n.detail["alert"] for n in alerts] == ["recon"]
    assert 'bastion_alerts_total{alert="recon",severity="critical"} 1.0' in metrics
    ((headers, body),) = received
    assert headers["x-hook-secret"] == "hook-secret-value"
    assert body["alert"] == "recon" and body["principal"] == "alice" and body["severity"] == "critical"
    assert body["detail"]["servers"] == ["calc", "other"]
    assert "hook-secret-value" not in repr(body) and SECRET_ARGUMENT not in repr(body)
