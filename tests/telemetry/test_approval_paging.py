"""A call held for an operator's approval is also POSTed to the alert webhook, so operators hear of it at once."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.telemetry.config import TelemetryConfig
from bastion.testing import running_gateway
from tests.servers import calc
from tests.telemetry.conftest import attach, serve_asgi

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_a_pending_approval_reaches_the_alert_webhook_and_the_call_waits_for_the_operator() -> None:
    received: list[dict[str, Any]] = []
    arrived = anyio.Event()

    async def hook(request: Request) -> Response:
        received.append(await request.json())
        arrived.set()
        return Response(status_code=204)

    async with serve_asgi(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        config = TelemetryConfig.model_validate({"anomaly": {"webhook": {"url": f"{base}/hook"}}})
        async with running_gateway({"calc": calc.build()}) as gw:
            attach(gw, config)
            answers: list[bool] = []

            async def held_call() -> None:
                answers.append(
                    await gw.approvals.ask(
                        question="Send this?",
                        principal="alice",
                        server="calc",
                        target="echo",
                        method="tools/call",
                        session_id="s1",
                    )
                )

            async with anyio.create_task_group() as tg:
                tg.start_soon(held_call)
                with anyio.fail_after(10):
                    await arrived.wait()
                (pending,) = await gw.approvals.pending()
                assert answers == []  # still waiting: only an operator can answer
                assert await gw.approvals.resolve(pending.id, False)
    assert answers == [False]
    (body,) = received
    assert body["kind"] == "approval" and body["principal"] == "alice" and body["server"] == "calc"
    assert body["detail"]["event"] == "pending" and body["detail"]["approval"] == pending.id
