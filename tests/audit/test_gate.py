"""Strict audit fails closed before the upstream: while the trail is down, no tool runs unrecorded."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from mcp import Client, MCPError
from mcp.server import MCPServer

from bastion.audit.recorder import AuditRecorder
from bastion.audit.sinks.sqlite import SqliteAuditSink
from bastion.pipeline.stages.audit_gate import AuditGateStage
from bastion.pipeline.stages.authorize import AuthenticateStage
from bastion.testing import client_transport, running_gateway
from tests.audit.conftest import Unpluggable

pytestmark = pytest.mark.anyio


def counting_server(calls: list[str]) -> MCPServer:
    server = MCPServer("work")

    @server.tool()
    def act(what: str) -> str:
        """Do something with side effects."""
        calls.append(what)
        return "done"

    return server


async def test_while_the_trail_is_down_calls_are_refused_before_the_upstream_runs_them(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    sink = Unpluggable(SqliteAuditSink(path=tmp_path / "audit.db"))
    recorder = AuditRecorder([sink], replica="r1", commit_timeout_seconds=5)  # type: ignore[list-item]
    stages = [AuthenticateStage(required=False), AuditGateStage(recorder)]
    async with running_gateway({"work": counting_server(calls)}, stages=stages, observers=[recorder]) as gw:
        async with Client(client_transport(gw), mode="legacy") as client:
            await client.call_tool("work__act", {"what": "first"})
            sink.plugged = False
            with pytest.raises(MCPError) as info:  # the store fails while this call's event is written
                await client.call_tool("work__act", {"what": "unrecorded"})
            assert info.value.code == -31020
            for _ in range(3):  # from now on the gate refuses before the upstream sees anything
                with pytest.raises(MCPError) as info:
                    await client.call_tool("work__act", {"what": "never"})
                assert (info.value.code, info.value.data["reason"]) == (-31020, "audit_unavailable")
            assert "never" not in calls
            sink.plugged = True
            with anyio.fail_after(15):
                while True:  # the recorder's backoff decides when it looks again
                    try:
                        await client.call_tool("work__act", {"what": "after"})
                        break
                    except MCPError as exc:
                        assert exc.code == -31020
            assert calls[-1] == "after" and recorder.healthy
    await recorder.aclose()
    assert recorder.lost == 0
