"""server-everything (npm, TypeScript SDK) as an HTTP upstream, over Streamable HTTP and over legacy SSE."""

from __future__ import annotations

import anyio
import httpx
import pytest
from mcp import types

from bastion.upstream.connection import State
from tests.transports.conftest import (
    everything_peer,
    gateway_for,
    http_server_config,
    is_down,
    is_ready,
    running,
    sdk_client,
    text,
    wait_state,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

KINDS = [("streamableHttp", "streamable-http"), ("sse", "sse")]
"""(server-everything's transport argument, Bastion's `transport` config)."""


@pytest.mark.parametrize(("kind", "transport"), KINDS)
async def test_server_to_client_requests_and_progress_are_relayed_to_the_caller(kind, transport):
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with running(everything_peer(kind)) as peer:
        async with gateway_for({"everything": http_server_config(peer.url, transport)}) as gateway:
            conn = gateway.upstreams["everything"]
            assert conn.state is State.READY and not conn.modern  # the era probe fell back to initialize
            async with sdk_client(gateway, mode="legacy") as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                assert {"everything__echo", "everything__trigger-sampling-request"} <= tools
                assert text(await client.call_tool("everything__echo", {"message": "hi"})) == "Echo: hi"
                sampled = await client.call_tool(
                    "everything__trigger-sampling-request", {"prompt": "hi", "maxTokens": 5}
                )
                assert "stub answer" in text(sampled)
                elicited = await client.call_tool("everything__trigger-elicitation-request", {})
                assert not elicited.is_error and "✅" in text(elicited)
                assert "file:///srv/project" in text(await client.call_tool("everything__get-roots-list", {}))
                result = await client.call_tool(
                    "everything__trigger-long-running-operation",
                    {"duration": 1, "steps": 3},
                    progress_callback=on_progress,
                )
                assert not result.is_error
                assert seen == [1, 2, 3]


@pytest.mark.parametrize(("kind", "transport"), KINDS)
async def test_prompts_and_resources_of_an_http_upstream_are_reachable(kind, transport):
    async with running(everything_peer(kind)) as peer:
        async with gateway_for({"everything": http_server_config(peer.url, transport)}) as gateway:
            async with sdk_client(gateway, mode="legacy") as client:
                prompts = {p.name for p in (await client.list_prompts()).prompts}
                assert "everything__simple-prompt" in prompts
                assert (await client.get_prompt("everything__args-prompt", {"city": "Paris"})).messages
                resources = (await client.list_resources()).resources
                assert resources
                assert (await client.read_resource(resources[0].uri)).contents
                assert (await client.read_resource("demo://resource/dynamic/text/3")).contents


async def test_a_session_the_server_forgot_is_reinitialized_even_when_it_answers_400_not_404():
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with running(everything_peer("streamableHttp")) as peer:
        async with gateway_for({"everything": http_server_config(peer.url)}) as gateway:
            async with sdk_client(gateway, mode="legacy", message_handler=on_message) as client:
                conn = gateway.upstreams["everything"]
                old = conn._transport.session_id
                async with httpx.AsyncClient() as http:
                    assert (await http.delete(peer.url, headers={"mcp-session-id": old})).status_code == 200
                with anyio.fail_after(20):
                    await changed.wait()
                    await wait_state(
                        gateway, "everything", lambda c: is_ready(c) and c._transport.session_id != old
                    )
                assert text(await client.call_tool("everything__echo", {"message": "again"})) == "Echo: again"


async def test_an_sse_upstream_that_goes_away_ends_the_transport_and_comes_back_after_restart():
    async with running(everything_peer("sse")) as peer:
        async with gateway_for({"everything": http_server_config(peer.url, "sse")}) as gateway:
            async with sdk_client(gateway, mode="legacy") as client:
                peer.kill()
                await wait_state(gateway, "everything", is_down)
                assert (await client.list_tools()).tools == []
                await peer.start()
                await wait_state(gateway, "everything", is_ready)
                assert text(await client.call_tool("everything__echo", {"message": "back"})) == "Echo: back"
