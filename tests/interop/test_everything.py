"""server-everything (npm) behind Bastion: every tool, prompt and resource reachable, server->client features work.

The same bodies run over memory, stdio and Streamable HTTP, with handshake-era and 2026-07-28 clients.
"""

from __future__ import annotations

import anyio
import pytest
from mcp import types

from tests.peers import calc_stdio, everything_stdio, time_stdio

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CONFIG = {"servers": {"everything": everything_stdio(), "time": time_stdio(), "calc": calc_stdio()}}

TOOL_ARGS = {
    "echo": {"message": "hello"},
    "get-annotated-message": {"messageType": "success", "includeImage": True},
    "get-env": {},
    "get-resource-links": {"count": 2},
    "get-resource-reference": {"resourceType": "Text", "resourceId": 1},
    "get-structured-content": {"location": "Chicago"},
    "get-sum": {"a": 2, "b": 40},
    "get-tiny-image": {},
    "gzip-file-as-resource": {"name": "hello.txt.gz", "data": "data:text/plain;base64,aGVsbG8="},
    "toggle-simulated-logging": {},
    "toggle-subscriber-updates": {},
    "trigger-long-running-operation": {"duration": 1, "steps": 2},
    "get-roots-list": {},
    "trigger-elicitation-request": {},
    "trigger-sampling-request": {"prompt": "hi", "maxTokens": 5},
}
"""Arguments for each server-everything tool (tools not here are checked for presence only)."""


def text(result: types.CallToolResult) -> str:
    return " ".join(c.text for c in result.content if isinstance(c, types.TextContent))


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_every_everything_tool_is_listed_namespaced_and_callable(bastion_client, mode):
    async with bastion_client(CONFIG, mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"time__get_current_time", "calc__add", "everything__echo"} <= set(tools)
        for name, args in TOOL_ARGS.items():
            assert f"everything__{name}" in tools, name
            result = await client.call_tool(f"everything__{name}", args)
            assert not result.is_error, (name, text(result))
        assert text(await client.call_tool("everything__get-sum", {"a": 2, "b": 40})).endswith("42.")


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_sampling_and_elicitation_are_relayed_to_the_calling_client(bastion_client, mode):
    async with bastion_client(CONFIG, mode=mode) as client:
        sampled = await client.call_tool(
            "everything__trigger-sampling-request", {"prompt": "hi", "maxTokens": 5}
        )
        assert "stub answer" in text(sampled)
        elicited = await client.call_tool("everything__trigger-elicitation-request", {})
        assert not elicited.is_error and "✅" in text(elicited)


async def test_roots_request_is_answered_by_the_calling_client(bastion_client):
    async with bastion_client(CONFIG, mode="legacy") as client:
        assert "file:///srv/project" in text(await client.call_tool("everything__get-roots-list", {}))


async def test_progress_notifications_reach_the_caller_with_its_own_token(bastion_client):
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with bastion_client(CONFIG, mode="legacy") as client:
        result = await client.call_tool(
            "everything__trigger-long-running-operation",
            {"duration": 1, "steps": 3},
            progress_callback=on_progress,
        )
        assert not result.is_error
        assert seen == [1, 2, 3]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_every_prompt_and_resource_is_reachable(bastion_client, mode):
    async with bastion_client(CONFIG, mode=mode) as client:
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        assert {"everything__simple-prompt", "everything__args-prompt", "calc__greet"} <= prompts
        assert (await client.get_prompt("everything__simple-prompt")).messages
        assert (await client.get_prompt("everything__args-prompt", {"city": "Paris"})).messages
        assert (
            await client.get_prompt(
                "everything__completable-prompt", {"department": "Engineering", "name": "Ada"}
            )
        ).messages
        greet = await client.get_prompt("calc__greet", {"who": "Ada"})
        assert "Hello, Ada!" in greet.messages[0].content.text
        resources = (await client.list_resources()).resources
        uris = {r.uri for r in resources}
        assert "calc://constants/pi" in uris
        for resource in resources:
            assert (await client.read_resource(resource.uri)).contents, resource.uri
        templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        assert "demo://resource/dynamic/text/{resourceId}" in templates
        dynamic = await client.read_resource("demo://resource/dynamic/text/3")
        assert dynamic.contents
        square = await client.read_resource("calc://square/7")
        assert square.contents[0].text == "49"


async def test_completion_is_routed_to_the_prompt_owner(bastion_client):
    async with bastion_client(CONFIG, mode="legacy") as client:
        ref = types.PromptReference(type="ref/prompt", name="everything__completable-prompt")
        completion = await client.complete(ref, {"name": "department", "value": "E"})
        assert "Engineering" in completion.completion.values


async def test_unknown_and_foreign_names_are_refused_as_unknown(bastion_client):
    async with bastion_client(CONFIG, mode="legacy") as client:
        for name in ("nope__echo", "everything__nope", "echo", "everything_echo"):
            with pytest.raises(Exception) as info:
                await client.call_tool(name, {})
            assert "Unknown tool" in str(info.value)


async def test_logging_level_and_log_messages_reach_the_client(bastion_client):
    got = anyio.Event()

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        got.set()

    async with bastion_client(CONFIG, mode="legacy", logging_callback=on_log) as client:
        await client.set_logging_level("debug")
        await client.call_tool("everything__toggle-simulated-logging", {})
        with anyio.fail_after(30):
            await got.wait()


async def test_resource_subscription_updates_reach_the_subscriber(bastion_client):
    updated = anyio.Event()

    async def on_message(message) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.set()

    async with bastion_client(CONFIG, mode="legacy", message_handler=on_message) as client:
        uri = "demo://resource/dynamic/text/1"
        await client.subscribe_resource(uri)
        await client.call_tool("everything__toggle-subscriber-updates", {})
        with anyio.fail_after(30):
            await updated.wait()
        await client.unsubscribe_resource(uri)
