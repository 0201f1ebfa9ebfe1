"""`GuardStage` and `ToolScreen` through a real gateway, in memory, with stub detectors (their heuristics are
tested elsewhere): what is blocked, redacted, flagged or asked, and what is recorded."""

from __future__ import annotations

import json

import anyio
import pytest
from mcp import Client, types
from mcp.shared.exceptions import MCPError

from bastion.errors import Reason
from bastion.guard.finding import Finding
from bastion.guard.pins import PinStatus
from bastion.pipeline.notice import NoticeKind
from bastion.testing import client_transport
from tests.guard.harness import guarded_gateway
from tests.guard.stub_detectors import stub_detectors, stub_guard
from tests.servers import shady

pytestmark = pytest.mark.anyio


def text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


def no_secret_in(*values: object) -> bool:
    dumped = json.dumps([repr(v) for v in values])
    return shady.FAKE_AWS_KEY not in dumped and "send_email" not in dumped


def _guard(config: dict | None = None):
    from bastion.guard.config import GuardrailsConfig

    return stub_guard(GuardrailsConfig.model_validate(config or {}))


async def test_an_injected_tool_result_is_refused_with_a_readable_error_and_recorded():
    async with (
        guarded_gateway({"shady": shady.build()}, guard=_guard()) as g,
        Client(client_transport(g.gateway), mode="legacy") as client,
    ):
        # `refusals: result` (the default): the model reads an `isError` result; the upstream result is withheld.
        refused = await client.call_tool("shady__fetch_page", {"url": "https://docs.example"})
        assert refused.is_error
        assert refused.meta == {
            "dev.bastion/refusal": {"by": "guardrail", "direction": "result", "detectors": ["injection"]}
        }
        message = text(refused)
        exchange = g.recorder.last("tools/call")
        error = exchange.error
        assert error["code"] == -31001 and error["data"]["reason"] == Reason.GUARDRAIL_BLOCKED
        assert error["data"]["direction"] == "response"
        assert error["data"]["findings"][0] == {
            "detector": "injection",
            "type": "instruction_override",
            "severity": "high",
            "confidence": 1.0,
            "path": "$.content[0].text",
            "action": "block",
        }
        assert {f["path"] for f in error["data"]["findings"]} == {
            "$.content[0].text",
            "$.structuredContent.result",
        }
        assert "injection/instruction_override" in message and "shady__fetch_page" in message
        assert exchange.outcome == "deny"
        assert [(d.stage, d.phase, d.outcome) for d in exchange.decisions] == [
            ("guard", "response", "reject")
        ]
        assert no_secret_in(refused, error, exchange.decisions, exchange.annotations)


async def test_a_leaked_key_is_redacted_and_the_email_flagged_in_the_tool_result():
    async with (
        guarded_gateway({"shady": shady.build()}, guard=_guard()) as g,
        Client(client_transport(g.gateway), mode="legacy") as client,
    ):
        result = await client.call_tool("shady__lookup_user", {"name": "alice"})
        assert text(result) == f"alice: e-mail {shady.EMAIL}, deploy key [REDACTED:aws_access_key]"
        exchange = g.recorder.last("tools/call")
        assert exchange.outcome == "redact"
        assert {(f.detector, f.type, f.action) for f in exchange.findings} == {
            ("secrets", "aws_access_key", "redact"),
            ("pii", "email", "flag"),
        }
        assert no_secret_in(exchange.decisions, exchange.annotations)


async def test_a_key_in_arguments_never_reaches_the_server():
    async with (
        guarded_gateway({"shady": shady.build()}, guard=_guard()) as g,
        Client(client_transport(g.gateway), mode="legacy") as client,
    ):
        result = await client.call_tool("shady__echo", {"text": f"use {shady.FAKE_AWS_KEY} please"})
        assert text(result) == "use [REDACTED:aws_access_key] please"
        decisions = g.recorder.last("tools/call").decisions
        assert [(d.phase, d.outcome) for d in decisions] == [("request", "mutate")]


async def test_prompt_messages_and_resource_contents_are_redacted_too():
    async with (
        guarded_gateway({"shady": shady.build()}, guard=_guard()) as g,
        Client(client_transport(g.gateway), mode="legacy") as client,
    ):
        prompt = await client.get_prompt("shady__summarize", {"text": f"key {shady.FAKE_AWS_KEY}"})
        rendered = json.dumps(prompt.model_dump(mode="json"))
        assert shady.FAKE_AWS_KEY not in rendered and "[REDACTED:aws_access_key]" in rendered
        request_decision, response_decision = g.recorder.last("prompts/get").decisions
        assert (request_decision.phase, response_decision.phase) == ("request", "response")
        resource = await client.read_resource("notes://leak")
        assert resource.contents[0].text == "deploy with [REDACTED:aws_access_key]"
        assert g.recorder.last("resources/read").outcome == "redact"


async def test_a_clean_call_passes_without_any_decision():
    async with (
        guarded_gateway({"shady": shady.build()}, guard=_guard()) as g,
        Client(client_transport(g.gateway), mode="legacy") as client,
    ):
        assert text(await client.call_tool("shady__echo", {"text": "hello"})) == "hello"
        exchange = g.recorder.last("tools/call")
        assert exchange.outcome == "allow" and exchange.decisions == []


async def test_a_direction_with_every_detector_off_is_not_inspected():
    keys = ("secrets", "pii", "pii.credit_card", "pii.iban", "pii.us_ssn", "pii.national_id_*", "injection")
    off = {"actions": dict.fromkeys(keys, "off")}
    async with guarded_gateway({"shady": shady.build()}, off, guard=_guard(off)) as g:
        stage = g.guardrails.stage
        assert not stage._request and not stage._response and g.guardrails.guard.active("tool")
        async with Client(client_transport(g.gateway), mode="legacy") as client:
            assert "AKIA" in text(await client.call_tool("shady__lookup_user", {"name": "a"}))


ASK_ON_EMAIL = {
    "overrides": [{"servers": ["shady"], "tools": ["echo"], "actions": {"pii": {"request": "ask"}}}]
}
ASK_CLIENT_ON_EMAIL = {"overrides": [{**ASK_ON_EMAIL["overrides"][0], "ask_client": True}]}
"""The same rule, opted into asking the calling client's user (consent) instead of an operator."""


@pytest.mark.parametrize("approve", [True, False])
async def test_ask_opted_into_user_consent_goes_to_the_client_elicitation_and_its_answer_decides(approve):
    questions: list[str] = []

    async def elicitation(ctx, params):
        questions.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": approve})

    async with (
        guarded_gateway(
            {"shady": shady.build()}, ASK_CLIENT_ON_EMAIL, guard=_guard(ASK_CLIENT_ON_EMAIL)
        ) as g,
        Client(client_transport(g.gateway), mode="legacy", elicitation_callback=elicitation) as client,
    ):
        call = client.call_tool("shady__echo", {"text": f"mail {shady.EMAIL} and {shady.FAKE_AWS_KEY}"})
        if approve:
            # Approved: the call runs, and the key found along with the e-mail is still redacted.
            assert text(await call) == f"mail {shady.EMAIL} and [REDACTED:aws_access_key]"
        else:
            refused = await call
            assert refused.is_error and refused.meta == {
                "dev.bastion/refusal": {"by": "guardrail", "approval": "denied"}
            }
        assert len(questions) == 1 and "pii/email" in questions[0] and "shady__echo" in questions[0]
        assert shady.EMAIL not in questions[0]
        decision = next(d for d in g.recorder.last("tools/call").decisions if d.phase == "request")
        assert decision.outcome == ("approved" if approve else "denied")
        assert {f.type for f in decision.findings} == {"email", "aws_access_key"}


@pytest.mark.parametrize("declares_elicitation", [False, True])
async def test_ask_waits_for_an_operator_even_when_the_client_could_approve_its_own_call(
    declares_elicitation,
):
    asked: list[str] = []

    async def elicitation(ctx, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    callbacks = {"elicitation_callback": elicitation} if declares_elicitation else {}
    async with (
        guarded_gateway({"shady": shady.build()}, ASK_ON_EMAIL, guard=_guard(ASK_ON_EMAIL)) as g,
        Client(client_transport(g.gateway), mode="legacy", **callbacks) as client,
    ):
        results: list[str] = []

        async def call() -> None:
            results.append(text(await client.call_tool("shady__echo", {"text": shady.EMAIL})))

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            with anyio.fail_after(5):
                while not (pending := await g.gateway.approvals.pending()):
                    await anyio.sleep(0.01)
            assert pending[0].method == "tools/call" and pending[0].target == "echo"
            assert await g.gateway.approvals.resolve(pending[0].id, True)
        assert results == [shady.EMAIL]
        assert asked == []  # the agent under check is never asked to approve itself


class _SchemaSpy:
    """A schema-style detector (the engine hands it the whole payload and the tool's inputSchema)."""

    name = "schema"
    max_depth = 32

    def __init__(self) -> None:
        self.schemas: list[object] = []

    def inspect_payload(self, payload, seen, schema, direction) -> list[Finding]:
        self.schemas.append(schema)
        return []

    def scan(self, text, context) -> list[Finding]:
        return []


async def test_tool_call_arguments_are_checked_against_the_listed_input_schema():
    from bastion.guard.config import GuardrailsConfig
    from bastion.guard.engine import Guard

    spy = _SchemaSpy()
    guard = Guard(GuardrailsConfig(), detectors=[*stub_detectors(), spy], backend="re")
    async with (
        guarded_gateway({"shady": shady.build()}, guard=guard) as g,
        Client(client_transport(g.gateway), mode="legacy") as client,
    ):
        await client.call_tool("shady__echo", {"text": "x"})
    schema = spy.schemas[-1]
    assert isinstance(schema, dict) and schema["required"] == ["text"]


# -- tool definitions --------------------------------------------------------------------------------------------


async def test_a_poisoned_tool_is_removed_and_calling_it_looks_like_an_unknown_tool():
    async with (
        guarded_gateway({"shady": shady.build()}, guard=_guard()) as g,
        Client(client_transport(g.gateway), mode="legacy") as client,
    ):
        names = {t.name for t in (await client.list_tools()).tools}
        assert "shady__add_notes" not in names and "shady__echo" in names
        errors = []
        for name in ("shady__add_notes", "shady__no_such_tool"):
            with pytest.raises(MCPError) as info:
                await client.call_tool(name, {"a": 1, "b": 2})
            errors.append((info.value.error.code, info.value.error.message.replace(name, "NAME")))
        assert errors[0] == errors[1] and "Unknown tool: NAME" in errors[0][1]
        await client.list_tools()
        (notice,) = g.recorder.of_kind(NoticeKind.TOOL_POISONED)  # once per definition, not per list
        assert (notice.server, notice.target, notice.severity) == ("shady", "add_notes", "critical")
        assert notice.detail["withheld"] is True and notice.detail["action"] == "block"
        assert notice.detail["findings"][0]["detector"] == "poisoning"


async def test_a_poisoned_tool_is_only_flagged_when_configured():
    config = {"actions": {"poisoning": {"tool": "flag"}}}
    async with (
        guarded_gateway({"shady": shady.build()}, config, guard=_guard(config)) as g,
        Client(client_transport(g.gateway), mode="legacy") as client,
    ):
        assert "shady__add_notes" in {t.name for t in (await client.list_tools()).tools}
        (notice,) = g.recorder.of_kind(NoticeKind.TOOL_POISONED)
        assert notice.detail["withheld"] is False and notice.severity == "warning"
        assert (await client.call_tool("shady__add_notes", {"a": 1, "b": 2})).structured_content == {
            "result": 3
        }


async def _upgrade_and_wait(client: Client, changed: anyio.Event) -> None:
    await client.call_tool("shady__upgrade", {})
    with anyio.fail_after(5):
        await changed.wait()


async def test_a_rug_pull_is_held_until_approved_and_then_released_with_list_changed():
    changes = []
    changed = anyio.Event()

    async def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changes.append(message)
            changed.set()

    async with (
        guarded_gateway({"shady": shady.build()}, guard=_guard()) as g,
        Client(client_transport(g.gateway), mode="legacy", message_handler=on_message) as client,
    ):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["shady__weather"].description == shady.WEATHER_V1
        await _upgrade_and_wait(client, changed)
        assert "shady__weather" not in {t.name for t in (await client.list_tools()).tools}
        with pytest.raises(MCPError) as info:
            await client.call_tool("shady__weather", {"city": "Oslo"})
        assert "Unknown tool" in info.value.error.message
        (notice,) = g.recorder.of_kind(NoticeKind.TOOL_CHANGED)
        assert (notice.server, notice.target) == ("shady", "weather")
        assert notice.detail["event"] == "changed" and notice.detail["withheld"] is True
        pins = g.guardrails.pins
        assert pins is not None
        (held,) = await pins.list_pins(held_only=True)
        assert held.tool == "weather" and held.status is PinStatus.CHANGED
        assert notice.detail["pendingHash"] == held.pending_hash and notice.detail["pinnedHash"] == held.hash

        seen = len(changes)
        await pins.approve("shady", "weather", by="test")  # in-process: released at once, no poll wait
        with anyio.fail_after(5):
            while len(changes) == seen:
                await anyio.sleep(0.01)
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["shady__weather"].description == shady.WEATHER_V2
        assert text(await client.call_tool("shady__weather", {"city": "Oslo"})) == "Sunny in Oslo"
        events = [n.detail["event"] for n in g.recorder.of_kind(NoticeKind.TOOL_CHANGED)]
        assert events == ["changed", "approved"]


async def test_a_rug_pull_is_served_and_reported_with_rug_pull_flag():
    config = {"rug_pull": "flag"}
    changed = anyio.Event()

    async def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with (
        guarded_gateway({"shady": shady.build()}, config, guard=_guard(config)) as g,
        Client(client_transport(g.gateway), mode="legacy", message_handler=on_message) as client,
    ):
        await client.list_tools()
        await _upgrade_and_wait(client, changed)
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert tools["shady__weather"].description == shady.WEATHER_V2
        (notice,) = g.recorder.of_kind(NoticeKind.TOOL_CHANGED)
        assert notice.detail["withheld"] is False and notice.detail["mode"] == "flag"


async def test_with_rug_pull_off_nothing_is_pinned():
    config = {"rug_pull": "off"}
    async with (
        guarded_gateway({"shady": shady.build()}, config, guard=_guard(config)) as g,
        Client(client_transport(g.gateway), mode="legacy") as client,
    ):
        await client.list_tools()
        assert g.guardrails.pins is None
        assert await g.store.list_records("tool-pins") == []


async def test_pins_survive_a_restart_and_a_changed_server_is_held_from_the_first_list(tmp_path):
    from bastion.state import EmbeddedStateStore

    async with EmbeddedStateStore(tmp_path / "state.db") as store:
        async with (
            guarded_gateway({"shady": shady.build()}, guard=_guard(), store=store) as g,
            Client(client_transport(g.gateway), mode="legacy") as client,
        ):
            assert "shady__weather" in {t.name for t in (await client.list_tools()).tools}
        async with (
            guarded_gateway({"shady": shady.build(rugpulled=True)}, guard=_guard(), store=store) as g,
            Client(client_transport(g.gateway), mode="legacy") as client,
        ):
            assert "shady__weather" not in {t.name for t in (await client.list_tools()).tools}
            assert g.guardrails.screen.held == {
                ("shady", "weather"): g.guardrails.screen.held[("shady", "weather")]
            }
