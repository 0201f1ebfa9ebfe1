"""Prometheus metrics: real calls through an in-process gateway, scraped over real HTTP and parsed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from mcp import Client, MCPError
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from bastion.auth.authenticator import Authenticator
from bastion.auth.config import AuthConfig
from bastion.auth.principal import Principal
from bastion.errors import Denied, Reason
from bastion.guard.finding import Finding, Severity
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.pipeline.stage import BaseStage
from bastion.pipeline.verdicts import PASS, Flag, Reject, Verdict
from bastion.state import EmbeddedStateStore
from bastion.telemetry.config import MetricsConfig, TelemetryConfig
from bastion.testing import client_transport, running_gateway
from tests.servers import calc
from tests.telemetry.conftest import attach, serve_asgi

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SECRET_ARGUMENT = "sk-live-arg-9f8e7d6c5b4a"
ALICE = Principal(name="alice", roles=frozenset({"dev"}), method="api_key")


class GuardLikeStage(BaseStage):
    """A real stage: flags echo calls with a finding, refuses `sleep` (what a guardrail would do)."""

    name = "guard"

    async def on_request(self, exchange: Exchange) -> Verdict:
        if exchange.target == "echo":
            return Flag(
                findings=(Finding(detector="secrets", type="api_key", severity=Severity.HIGH, action="flag"),)
            )
        if exchange.target == "sleep":
            error = Denied("blocked", reason=Reason.GUARDRAIL_BLOCKED)
            finding = Finding(detector="injection", type="override", action="block")
            return Reject(error=error, findings=(finding,))
        return PASS


class AuditLike:
    """Stands where the audit recorder sits: an observer exposing `queue_depth` and `dropped`."""

    queue_depth = 3
    dropped = 2

    async def on_exchange(self, exchange: Exchange) -> None:
        return None


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    matches = [v for lab, v in found.get(name, []) if all(lab.get(k) == w for k, w in labels.items())]
    assert matches, f"no sample {name} {labels}"
    return sum(matches)


async def _calls(client: Any) -> None:
    assert (await client.call_tool("calc__add", {"a": 1, "b": 2})).structured_content == {"result": 3}
    await client.call_tool("calc__add", {"a": 2, "b": 2})
    await client.call_tool("calc__echo", {"text": SECRET_ARGUMENT})
    assert (await client.call_tool("calc__sleep", {"seconds": 0})).is_error  # refused: `refusals: result`
    with pytest.raises(MCPError):
        await client.call_tool(f"calc__{SECRET_ARGUMENT}", {})
    await client.list_tools()


async def test_metrics_scraped_over_http_count_calls_latency_findings_and_gateway_state() -> None:
    async with running_gateway({"calc": calc.build()}, stages=[GuardLikeStage()]) as gw:
        audit = AuditLike()
        gw.observers.append(audit)
        telemetry = attach(gw, TelemetryConfig.model_validate({"anomaly": {"enabled": False}}), audit=audit)
        async with serve_asgi(Starlette(routes=telemetry.routes())) as base:
            async with Client(client_transport(gw, principal=ALICE), mode="legacy") as client:
                await _calls(client)
                await gw.emit(Notice(kind=NoticeKind.AUTH_FAILURE, detail={"reason": "expired"}))
                await gw.emit(Notice(kind=NoticeKind.AUTH_FAILURE, detail={"reason": "made-up"}))
                async with httpx.AsyncClient() as http:
                    response = await http.get(f"{base}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    found = samples(text)
    calls = "bastion_calls_total"
    assert value(found, calls, server="calc", tool="add", method="tools/call", outcome="allow") == 2
    assert value(found, calls, server="calc", tool="echo", method="tools/call", outcome="flag") == 1
    assert value(found, calls, server="calc", tool="sleep", method="tools/call", outcome="deny") == 1
    assert value(found, calls, server="", tool="other", method="tools/call", outcome="error") == 1
    assert (
        value(found, calls, server="", tool="", method="tools/list", outcome="allow") >= 1
    )  # the SDK lists too
    assert value(found, "bastion_call_errors_total", method="tools/call", reason="guardrail_blocked") == 1
    assert value(found, "bastion_call_errors_total", method="tools/call", reason="invalid_params") == 1
    assert value(found, "bastion_call_duration_seconds_count", server="calc", method="tools/call") == 4
    assert value(found, "bastion_upstream_duration_seconds_count", server="calc", method="tools/call") == 3
    assert value(found, "bastion_guardrail_findings_total", detector="secrets", action="flag") == 1
    assert value(found, "bastion_guardrail_findings_total", detector="injection", action="block") == 1
    assert value(found, "bastion_auth_failures_total", reason="expired") == 1
    assert value(found, "bastion_auth_failures_total", reason="other") == 1
    assert value(found, "bastion_active_sessions") == 1
    assert value(found, "bastion_upstream_up", server="calc") == 1
    assert value(found, "bastion_upstream_state", server="calc", state="ready") == 1
    assert value(found, "bastion_upstream_state", server="calc", state="down") == 0
    assert value(found, "bastion_audit_queue_depth") == 3
    assert value(found, "bastion_audit_dropped_total") == 2
    # Bounded labels: no argument values, no unresolved names, no principals by default.
    assert SECRET_ARGUMENT not in text
    assert "alice" not in text
    assert all("principal" not in labels for labels, _ in found[calls])


async def test_principal_labels_appear_only_when_switched_on() -> None:
    config = TelemetryConfig.model_validate(
        {"metrics": {"principal_labels": True}, "anomaly": {"enabled": False}}
    )
    async with running_gateway({"calc": calc.build()}) as gw:
        telemetry = attach(gw, config)
        async with Client(client_transport(gw, principal=ALICE), mode="legacy") as client:
            await client.call_tool("calc__add", {"a": 1, "b": 2})
        assert telemetry.metrics is not None
        body, _ = telemetry.metrics.render()
    found = samples(body.decode())
    assert value(found, "bastion_calls_total", tool="add", principal="alice") == 1


async def test_tool_labels_are_capped_per_server_and_the_rest_collapse_to_other() -> None:
    config = TelemetryConfig.model_validate(
        {"metrics": {"max_tools_per_server": 1}, "anomaly": {"enabled": False}}
    )
    async with running_gateway({"calc": calc.build()}) as gw:
        telemetry = attach(gw, config)
        async with Client(client_transport(gw), mode="legacy") as client:
            await client.call_tool("calc__add", {"a": 1, "b": 2})
            await client.call_tool("calc__echo", {"text": "hi"})
        assert telemetry.metrics is not None
        found = samples(telemetry.metrics.render()[0].decode())
    assert value(found, "bastion_calls_total", tool="add") == 1
    assert value(found, "bastion_calls_total", tool="other") == 1


async def test_two_gateways_keep_separate_registries() -> None:
    async with running_gateway({"calc": calc.build()}) as one, running_gateway({"calc": calc.build()}) as two:
        first = attach(one, TelemetryConfig())
        second = attach(two, TelemetryConfig())
        async with Client(client_transport(one), mode="legacy") as client:
            await client.call_tool("calc__add", {"a": 1, "b": 2})
        assert first.metrics is not None and second.metrics is not None
        assert value(samples(first.metrics.render()[0].decode()), "bastion_calls_total", tool="add") == 1
        assert "bastion_calls_total{" not in second.metrics.render()[0].decode()


async def test_scrape_access_needs_the_bearer_token_or_an_admin_credential_off_loopback(
    tmp_path: Any,
) -> None:
    store = EmbeddedStateStore(tmp_path / "state.db")
    async with store:
        authenticator = Authenticator.from_config(AuthConfig.model_validate({"enabled": True}), store)
        from bastion.auth.apikeys import ApiKeyStore

        keys = ApiKeyStore(store)
        admin_key, _ = await keys.create("ops", ["admin"])
        dev_key, _ = await keys.create("dev", ["dev"])
        token = "scrape-token-0123456789"
        config = MetricsConfig.model_validate({"loopback_open": False, "bearer_token": token})
        async with running_gateway({"calc": calc.build()}) as gw:
            telemetry = attach(gw, TelemetryConfig(metrics=config))
            app = Starlette(routes=telemetry.routes(authenticator))
            async with serve_asgi(app) as base, httpx.AsyncClient(base_url=base) as http:
                statuses = {
                    "none": (await http.get("/metrics")).status_code,
                    "token": (
                        await http.get("/metrics", headers={"authorization": f"Bearer {token}"})
                    ).status_code,
                    "wrong": (
                        await http.get("/metrics", headers={"authorization": "Bearer nope-nope-nope"})
                    ).status_code,
                    "admin": (await http.get("/metrics", headers={"x-api-key": admin_key})).status_code,
                    "dev": (
                        await http.get("/metrics", headers={"authorization": f"Bearer {dev_key}"})
                    ).status_code,
                }
                body = (await http.get("/metrics", headers={"authorization": f"Bearer {token}"})).text
        await authenticator.aclose()
    assert statuses == {"none": 401, "token": 200, "wrong": 401, "admin": 200, "dev": 403}
    assert token not in body and admin_key not in body and dev_key not in body


async def test_loopback_scrapes_are_open_by_default() -> None:
    async with running_gateway({"calc": calc.build()}) as gw:
        telemetry = attach(gw, TelemetryConfig())
        async with serve_asgi(Starlette(routes=telemetry.routes())) as base, httpx.AsyncClient() as http:
            response = await http.get(f"{base}/metrics")
    assert response.status_code == 200
    assert "bastion_build_info" in response.text


def test_the_metrics_path_may_not_shadow_an_mcp_endpoint() -> None:
    with pytest.raises(ValueError):
        MetricsConfig(path="/mcp")
