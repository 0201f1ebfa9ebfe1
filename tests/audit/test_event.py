"""What an audit event holds: forwarded (redacted) arguments, findings without matched text, result summaries,
decisions, latency split; and never a secret, checked on the raw database bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError

from bastion.audit.event import event_from_notice
from bastion.audit.recorder import AuditRecorder
from bastion.audit.sinks import AuditQuery
from bastion.audit.sinks.sqlite import SqliteAuditSink
from bastion.errors import Denied
from bastion.guard.finding import Finding, Severity
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.pipeline.stage import BaseStage
from bastion.pipeline.verdicts import PASS, Mutate, Reject, Verdict
from bastion.testing import client_transport, running_gateway
from tests.servers import calc

pytestmark = pytest.mark.anyio

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


class RedactKeys(BaseStage):
    """A guard-like stage: replaces an AWS key in `text` and records where it was, never what."""

    name = "guard"

    async def on_request(self, exchange: Exchange) -> Verdict:
        text = exchange.arguments.get("text")
        if not isinstance(text, str) or AWS_KEY not in text:
            return PASS
        start = text.index(AWS_KEY)
        finding = Finding(
            detector="secrets",
            type="aws_access_key",
            severity=Severity.HIGH,
            path="$.arguments.text",
            start=start,
            end=start + len(AWS_KEY),
            action="redact",
        )
        redacted = text.replace(AWS_KEY, "[REDACTED:aws_access_key]")
        return Mutate(
            body={**exchange.params, "arguments": {**exchange.arguments, "text": redacted}},
            findings=(finding,),
            explanation="redacted 1 secret",
        )


class DenyEcho(BaseStage):
    name = "authorize"

    async def on_request(self, exchange: Exchange) -> Verdict:
        if exchange.target == "greet":
            exchange.annotations["authorize"] = {"rule": "no-greetings", "allowed": False}
            return Reject(error=Denied("not allowed"), explanation="denied by rule no-greetings")
        return PASS


async def _run(tmp_path: Path, calls: Any, **recorder_options: Any) -> list[Any]:
    sink = SqliteAuditSink(path=tmp_path / "audit.db")
    recorder = AuditRecorder([sink], replica="r1", **recorder_options)
    async with running_gateway(
        {"calc": calc.build()}, stages=[DenyEcho(), RedactKeys()], observers=[recorder]
    ) as gw:
        async with Client(client_transport(gw), mode="legacy") as client:
            await calls(client)
    await recorder.aclose()
    async with SqliteAuditSink(path=tmp_path / "audit.db") as reader:
        return await reader.search(AuditQuery(kind="exchange", server="calc", limit=100, order="asc"))


async def test_arguments_are_recorded_as_forwarded_after_redaction_and_no_byte_of_the_secret_is_stored(
    tmp_path: Path,
) -> None:
    async def calls(client: Client) -> None:
        result = await client.call_tool("calc__echo", {"text": f"my key is {AWS_KEY}"})
        assert result.content[0].text == "my key is [REDACTED:aws_access_key]"  # type: ignore[union-attr]

    (event,) = await _run(tmp_path, calls)
    assert event.arguments == {"text": "my key is [REDACTED:aws_access_key]"}
    assert event.outcome == "redact"
    assert event.decisions == (
        {
            "stage": "guard",
            "phase": "request",
            "outcome": "mutate",
            "explanation": "redacted 1 secret",
            "findings": [
                {
                    "detector": "secrets",
                    "type": "aws_access_key",
                    "severity": "high",
                    "confidence": 1.0,
                    "path": "$.arguments.text",
                    "action": "redact",
                }
            ],
        },
    )
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("audit.db"))
    assert AWS_KEY.encode() not in raw and b"[REDACTED:aws_access_key]" in raw


async def test_large_arguments_are_cut_with_a_truncation_marker(tmp_path: Path) -> None:
    async def calls(client: Client) -> None:
        await client.call_tool("calc__echo", {"text": "x" * 5000})

    (event,) = await _run(tmp_path, calls, max_argument_bytes=200)
    assert event.arguments_truncated and event.arguments_bytes == len('{"text":""}') + 5000
    assert event.arguments["_truncated"] is True and event.arguments["_bytes"] == event.arguments_bytes
    assert event.arguments["_preview"].startswith('{"text":"xxx') and len(event.arguments["_preview"]) == 200


async def test_results_are_summarised_unless_asked_for(tmp_path: Path) -> None:
    async def calls(client: Client) -> None:
        await client.call_tool("calc__add", {"a": 2, "b": 3})
        failed = await client.call_tool("calc__add", {"a": "not a number"})
        assert failed.is_error

    ok, failed = await _run(tmp_path, calls)
    assert (ok.result, ok.is_error, ok.error_code) == (None, False, None) and ok.result_bytes > 0
    assert failed.is_error and failed.outcome == "allow"  # a tool error is the tool's answer, not a refusal
    (included, _) = await _run(tmp_path / "with", calls, include_results=True)
    assert included.result["structuredContent"] == {"result": 5}


async def test_a_refusal_records_the_error_code_reason_and_rule(tmp_path: Path) -> None:
    async def calls(client: Client) -> None:
        with pytest.raises(MCPError):
            await client.get_prompt("calc__greet", {"who": "bob"})

    (event,) = await _run(tmp_path, calls)
    assert (event.method, event.target, event.outcome) == ("prompts/get", "greet", "deny")
    assert (event.error_code, event.error_reason, event.rule) == (-31001, "policy_denied", "no-greetings")
    assert event.arguments == {"who": "bob"}
    assert event.decisions[0]["explanation"] == "denied by rule no-greetings"


async def test_latency_is_split_between_the_gateway_and_the_upstream(tmp_path: Path) -> None:
    async def calls(client: Client) -> None:
        await client.call_tool("calc__sleep", {"seconds": 0.05})

    (event,) = await _run(tmp_path, calls)
    assert event.upstream_ms > 0 and event.gateway_ms >= 0
    assert abs(event.latency_ms - event.upstream_ms - event.gateway_ms) < 0.01
    assert event.principal == "anonymous" and event.transport == "memory" and event.client_name


def test_a_notice_becomes_an_event_with_its_facts() -> None:
    notice = Notice(
        kind=NoticeKind.TOOL_CHANGED,
        server="calc",
        target="add",
        severity="warning",
        principal="alice",
        roles=("dev",),
        detail={"old": "ab12", "new": "cd34"},
    )
    event = event_from_notice(notice)
    assert (event.event_id, event.kind, event.time) == (notice.notice_id, "tool_changed", notice.time)
    assert (event.server, event.target, event.outcome, event.roles) == ("calc", "add", "warning", ("dev",))
    assert event.detail == {"old": "ab12", "new": "cd34"}


def test_content_built_directly_has_exactly_the_fields_of_an_event() -> None:
    from bastion.audit.event import AuditEvent, exchange_content
    from bastion.pipeline.exchange import SessionInfo

    exchange = Exchange(
        session=SessionInfo(session_id="s", transport="stdio"), method="tools/call", params={}
    )
    content = exchange_content(exchange, max_argument_bytes=100)
    assert set(content) == set(AuditEvent(event_id="e", kind="exchange", time=0.0).content())
