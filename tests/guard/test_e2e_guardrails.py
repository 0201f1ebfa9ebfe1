"""Guardrails end to end: the built-in detectors, `build_runtime()`, a real malicious stdio server, the official SDK
client, `bastion stdio`, `bastion tools approve` and `bastion scan` as subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from mcp import Client, StdioServerParameters, types
from mcp.shared.exceptions import MCPError

from bastion.app.runtime import Runtime, build_runtime
from bastion.audit.capture import capture_audit
from bastion.config import load_config
from bastion.errors import Reason
from bastion.pipeline.notice import NoticeKind
from bastion.testing import client_transport
from tests.guard.harness import Recorder
from tests.peers import PYTHON, ROOT, bastion_env, calc_stdio
from tests.servers import shady

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SHADY = {
    "transport": "stdio",
    "command": PYTHON,
    "args": [str(ROOT / "tests/servers/shady.py")],
    # The handshake era skips the 5-second `server/discover` probe, which a slow start on a loaded machine can
    # miss (the dual-era SDK server then refuses the fallback `initialize`).
    "protocol": "legacy",
}
CALC = {**calc_stdio(), "protocol": "legacy"}
ASK_ON_EMAIL = {"servers": ["shady"], "tools": ["echo"], "actions": {"pii": {"request": "ask"}}}


def write_config(tmp_path: Path, guardrails: dict[str, Any] | None = None, **servers: Any) -> Path:
    path = tmp_path / "bastion.yaml"
    document = {
        "servers": servers or {"shady": SHADY},
        "state": {"path": str(tmp_path / "state.db")},
        "audit": {"sinks": [{"type": "sqlite", "path": str(tmp_path / "audit.db")}]},
        "guardrails": guardrails or {},
    }
    path.write_text(yaml.safe_dump(document))
    return path


@contextlib.asynccontextmanager
async def gateway(path: Path) -> AsyncIterator[tuple[Runtime, Recorder, Any]]:
    runtime = build_runtime(load_config(path), config_path=str(path))
    recorder, audit = Recorder(), capture_audit()
    runtime.gateway.observers.extend([recorder, audit])
    await runtime.gateway.start()
    try:
        yield runtime, recorder, audit
    finally:
        await runtime.gateway.aclose()


def text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


def bastion(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bastion.cli", *args],
        env=bastion_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


async def test_results_are_blocked_redacted_and_flagged_and_the_trail_has_no_secret(tmp_path):
    async with (
        gateway(write_config(tmp_path)) as (runtime, recorder, audit),
        Client(client_transport(runtime.gateway), mode="legacy") as client,
    ):
        refused = await client.call_tool("shady__fetch_page", {"url": "https://docs.example.org"})
        assert refused.is_error and refused.meta["dev.bastion/refusal"]["detectors"] == ["injection"]
        assert "send_email" not in text(refused)
        error = recorder.last("tools/call").error
        assert error["code"] == -31001 and error["data"]["reason"] == Reason.GUARDRAIL_BLOCKED
        blocking = [f for f in error["data"]["findings"] if f["action"] == "block"]
        assert blocking and {f["detector"] for f in blocking} == {"injection"}
        assert recorder.last("tools/call").outcome == "deny"

        leaked = await client.call_tool("shady__lookup_user", {"name": "alice"})
        assert shady.FAKE_AWS_KEY not in text(leaked) and "[REDACTED:aws_access_key]" in text(leaked)
        assert shady.EMAIL in text(leaked)  # contact data is flagged, not removed, by default
        exchange = recorder.last("tools/call")
        assert exchange.outcome == "redact"
        found = {(f.detector, f.type, f.action) for f in exchange.findings}
        assert {("secrets", "aws_access_key", "redact"), ("pii", "email", "flag")} <= found

        echoed = await client.call_tool("shady__echo", {"text": f"deploy {shady.FAKE_AWS_KEY}"})
        assert text(echoed) == "deploy [REDACTED:aws_access_key]"  # what the server itself received

    events = audit.of_kind("exchange")
    assert events and all(shady.FAKE_AWS_KEY not in json.dumps(e.to_dict()) for e in events)


async def test_a_poisoned_definition_is_hidden_refused_and_noticed_or_only_flagged(tmp_path):
    async with (
        gateway(write_config(tmp_path)) as (runtime, recorder, _audit),
        Client(client_transport(runtime.gateway), mode="legacy") as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
        assert "shady__add_notes" not in names and "shady__weather" in names
        with pytest.raises(MCPError) as info:
            await client.call_tool("shady__add_notes", {"a": 1, "b": 2})
        assert info.value.error.message == "Unknown tool: shady__add_notes"
        (notice,) = recorder.of_kind(NoticeKind.TOOL_POISONED)
        assert (notice.server, notice.target, notice.detail["withheld"]) == ("shady", "add_notes", True)
        assert {f["detector"] for f in notice.detail["findings"]} == {"poisoning", "classifier"}
        assert "id_rsa" not in json.dumps(notice.detail)

    flagging = tmp_path / "flag"
    flagging.mkdir()
    async with (
        gateway(
            write_config(
                flagging, {"actions": {"poisoning": {"tool": "flag"}, "classifier": {"tool": "flag"}}}
            )
        ) as (
            runtime,
            recorder,
            _,
        ),
        Client(client_transport(runtime.gateway), mode="legacy") as client,
    ):
        assert "shady__add_notes" in {t.name for t in (await client.list_tools()).tools}
        (notice,) = recorder.of_kind(NoticeKind.TOOL_POISONED)
        assert notice.detail["withheld"] is False


@pytest.mark.parametrize("approve", [True, False])
async def test_ask_opted_into_user_consent_is_answered_through_the_clients_elicitation(tmp_path, approve):
    asked: list[str] = []

    async def elicitation(ctx: Any, params: Any) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": approve})

    async with (
        gateway(write_config(tmp_path, {"overrides": [{**ASK_ON_EMAIL, "ask_client": True}]})) as (
            runtime,
            recorder,
            _audit,
        ),
        Client(client_transport(runtime.gateway), mode="legacy", elicitation_callback=elicitation) as client,
    ):
        call = client.call_tool("shady__echo", {"text": f"write to {shady.EMAIL}"})
        if approve:
            assert text(await call) == f"write to {shady.EMAIL}"
        else:
            refused = await call
            assert refused.is_error and refused.meta == {
                "dev.bastion/refusal": {"by": "guardrail", "approval": "denied"}
            }
        assert len(asked) == 1 and "pii/email" in asked[0] and shady.EMAIL not in asked[0]
        outcomes = [d.outcome for d in recorder.last("tools/call").decisions if d.phase == "request"]
        assert outcomes == ["approved" if approve else "denied"]


async def test_a_rug_pull_is_held_and_bastion_tools_approve_releases_it_with_list_changed(tmp_path):
    # One shared process: `upgrade` must change the definition the catalogue lists (with a process per
    # principal it would change only the caller's own process; tests/upstream covers that screen).
    path = write_config(tmp_path, shady={**SHADY, "isolation": "shared"})
    changed = anyio.Event()
    notified = []

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            notified.append(message)
            changed.set()

    async with (
        gateway(path) as (runtime, recorder, _audit),
        Client(client_transport(runtime.gateway), mode="legacy", message_handler=on_message) as client,
    ):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["shady__weather"].description == shady.WEATHER_V1
        await client.call_tool("shady__upgrade", {})
        with anyio.fail_after(10):
            await changed.wait()
        assert "shady__weather" not in {t.name for t in (await client.list_tools()).tools}
        with pytest.raises(MCPError):
            await client.call_tool("shady__weather", {"city": "Oslo"})
        (notice,) = recorder.of_kind(NoticeKind.TOOL_CHANGED)
        assert notice.detail["event"] == "changed" and notice.detail["withheld"] is True

        listed = await anyio.to_thread.run_sync(bastion, "tools", "list", "--config", str(path), "--held")
        assert "weather" in listed.stdout and "changed" in listed.stdout
        shown = await anyio.to_thread.run_sync(
            bastion, "tools", "diff", "--config", str(path), "shady", "weather"
        )
        assert shady.WEATHER_V2 in shown.stdout
        seen = len(notified)
        approved = await anyio.to_thread.run_sync(
            bastion, "tools", "approve", "--config", str(path), "shady", "weather"
        )
        assert approved.returncode == 0, approved.stderr
        with anyio.fail_after(30):  # the gateway polls the store every couple of seconds
            while len(notified) == seen:
                await anyio.sleep(0.05)
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["shady__weather"].description == shady.WEATHER_V2
        assert text(await client.call_tool("shady__weather", {"city": "Oslo"})) == "Sunny in Oslo"
        assert [n.detail["event"] for n in recorder.of_kind(NoticeKind.TOOL_CHANGED)] == [
            "changed",
            "approved",
        ]


async def test_bastion_stdio_enforces_the_guardrails_for_a_desktop_client(tmp_path):
    path = write_config(tmp_path)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "bastion.cli", "stdio", "--config", str(path)],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    with anyio.fail_after(600):
        async with Client(params) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert "shady__add_notes" not in names and "shady__lookup_user" in names
            leaked = await client.call_tool("shady__lookup_user", {"name": "bob"})
            assert "[REDACTED:aws_access_key]" in text(leaked) and shady.FAKE_AWS_KEY not in text(leaked)
            refused = await client.call_tool("shady__fetch_page", {"url": "https://docs.example.org"})
            assert refused.is_error and refused.meta["dev.bastion/refusal"]["by"] == "guardrail"


async def test_bastion_scan_exits_1_on_the_poisoned_server_and_0_on_a_clean_one(tmp_path):
    path = write_config(tmp_path, None, shady=SHADY, calc=CALC)
    poisoned = await anyio.to_thread.run_sync(bastion, "scan", "--config", str(path), "--server", "shady")
    assert poisoned.returncode == 1, poisoned.stderr
    assert "add_notes" in poisoned.stdout and "POISONED" in poisoned.stdout
    assert "id_rsa" not in poisoned.stdout
    clean = await anyio.to_thread.run_sync(
        bastion, "scan", "--config", str(path), "--server", "calc", "--format", "json"
    )
    assert clean.returncode == 0, clean.stderr
    report = json.loads(clean.stdout)
    assert report["status"] == 0 and report["suspicious"] == 0 and report["servers"][0]["tools"]
