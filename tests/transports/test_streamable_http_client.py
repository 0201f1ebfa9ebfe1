"""Streamable HTTP upstreams behind a real Gateway: the official SDK `MCPServer` in a subprocess, both eras.

The SDK client calls through the gateway (in memory); the gateway reaches the server over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import anyio
import httpx
import pytest
from mcp import MCPError, types

from bastion.upstream.connection import State
from tests.transports.conftest import (
    Peer,
    calc_peer,
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

ERAS = [("legacy", "legacy"), ("modern", "2026-07-28"), ("auto", "auto")]
"""(upstream `protocol` config, downstream SDK client mode)."""
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _modern_expected(protocol: str) -> bool:
    # The SDK MCPServer is dual-era, so `auto` finds the 2026-07-28 era.
    return protocol in ("modern", "auto")


@pytest.mark.parametrize(("protocol", "mode"), ERAS)
async def test_tools_prompts_and_resources_work_through_an_http_upstream(calc_http: Peer, protocol, mode):
    servers = {"calc": http_server_config(calc_http.url, protocol=protocol)}
    async with gateway_for(servers) as gateway, sdk_client(gateway, mode=mode) as client:
        conn = gateway.upstreams["calc"]
        assert conn.state is State.READY
        assert conn.modern is _modern_expected(protocol)
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"calc__add", "calc__echo", "calc__slow_count"} <= names
        assert (await client.call_tool("calc__add", {"a": 20, "b": 22})).structured_content == {"result": 42}
        greet = await client.get_prompt("calc__greet", {"who": "Ada"})
        assert greet.messages[0].content.text == "Hello, Ada!"
        assert (await client.read_resource("calc://constants/pi")).contents[0].text == "3.14159"
        assert (await client.read_resource("calc://square/7")).contents[0].text == "49"


@pytest.mark.parametrize(("protocol", "mode"), ERAS[:2])
async def test_configured_headers_and_the_callers_traceparent_reach_the_upstream(
    calc_http: Peer, protocol, mode
):
    servers = {"calc": http_server_config(calc_http.url, protocol=protocol, headers={"X-Api-Key": "k-123"})}
    async with gateway_for(servers) as gateway, sdk_client(gateway, mode=mode) as client:
        seen = (
            await client.call_tool("calc__seen_headers", {}, meta={"traceparent": TRACEPARENT})
        ).structured_content
        assert seen["x-api-key"] == "k-123"
        assert seen["traceparent"] == TRACEPARENT
        if protocol == "modern":
            assert seen["mcp-method"] == "tools/call"
            assert seen["mcp-name"] == "seen_headers"
            assert seen["mcp-protocol-version"] == "2026-07-28"
            assert "mcp-session-id" not in seen
        else:
            # The call went over this client session's own upstream session, not the catalogue's.
            (own,) = gateway.pool.connections()
            assert seen["mcp-protocol-version"] == own.protocol_version
            assert seen["mcp-session-id"] == own._transport.session_id
            assert own._transport.session_id != gateway.upstreams["calc"]._transport.session_id


async def test_a_non_ascii_tool_name_travels_base64_encoded_in_mcp_name(calc_http: Peer):
    servers = {"calc": http_server_config(calc_http.url, protocol="modern")}
    async with gateway_for(servers) as gateway:
        # Straight to the connection: the gateway would refuse an unknown tool before it left Bastion.
        reply = await gateway.upstreams["calc"].request("tools/call", {"name": "café", "arguments": {}})
        # A header that did not match the body would be HTTP 400 / -32020; the server got past that check.
        assert reply.get("error", {}).get("code") != -32020
        assert "café" in str(reply)


async def test_arguments_annotated_x_mcp_header_are_mirrored_into_mcp_param_headers(calc_http: Peer):
    servers = {"calc": http_server_config(calc_http.url, protocol="modern")}
    async with gateway_for(servers) as gateway, sdk_client(gateway, mode="2026-07-28") as client:
        await client.list_tools()  # the transport learns the annotations from the upstream's tools/list
        # The server refuses a call whose Mcp-Param-Region is missing or differs from the argument.
        assert text(await client.call_tool("calc__regional", {"region": "eu-west"})) == "eu-west eu-west"
        result = text(await client.call_tool("calc__regional", {"region": "zürich"}))
        assert result.startswith("zürich =?base64?")


@pytest.mark.parametrize(("protocol", "mode"), ERAS[:2])
async def test_progress_from_the_upstream_reaches_the_caller(calc_http: Peer, protocol, mode):
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    servers = {"calc": http_server_config(calc_http.url, protocol=protocol)}
    async with gateway_for(servers) as gateway, sdk_client(gateway, mode=mode) as client:
        result = await client.call_tool("calc__slow_count", {"n": 3}, progress_callback=on_progress)
        assert text(result) == "counted 3"
        assert seen == [1, 2, 3]


async def test_json_responses_are_accepted_as_well_as_sse():
    async with (
        running(calc_peer("http-json")) as peer,
        gateway_for({"calc": http_server_config(peer.url)}) as gw,
    ):
        async with sdk_client(gw, mode="legacy") as client:
            assert (await client.call_tool("calc__add", {"a": 1, "b": 2})).structured_content == {"result": 3}


async def test_a_stream_the_server_closes_mid_call_is_resumed_with_last_event_id():
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with running(calc_peer("http-resumable")) as peer:
        async with gateway_for({"calc": http_server_config(peer.url, protocol="legacy")}) as gateway:
            async with sdk_client(gateway, mode="legacy") as client:
                result = await client.call_tool("calc__poll_count", {"n": 4}, progress_callback=on_progress)
                assert text(result) == "polled 4"
                assert seen == [1, 2, 3, 4]


async def test_the_standalone_get_stream_reconnects_and_list_changed_still_arrives():
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with running(calc_peer("http-resumable")) as peer:
        async with gateway_for({"calc": http_server_config(peer.url, protocol="legacy")}) as gateway:
            async with sdk_client(gateway, mode="legacy", message_handler=on_message) as client:
                assert text(await client.call_tool("calc__drop_get_stream", {})) == "dropped"
                # What the server sends while no GET stream is open is lost (it sent no event id to resume
                # from), so announce until the reconnected stream carries one.
                with anyio.fail_after(20):
                    while not changed.is_set():
                        await client.call_tool("calc__announce_tools_changed", {})
                        with anyio.move_on_after(0.2):
                            await changed.wait()
                assert gateway.upstreams["calc"].restarts == 0


async def test_a_modern_upstreams_list_changed_arrives_on_its_long_lived_subscriptions_listen_stream(
    calc_http,
):
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    servers = {"calc": http_server_config(calc_http.url, protocol="modern")}
    async with gateway_for(servers) as gateway:
        async with sdk_client(gateway, mode="legacy", message_handler=on_message) as client:
            assert gateway.upstreams["calc"].modern
            assert text(await client.call_tool("calc__grow", {})) == "grown"
            with anyio.fail_after(20):
                await changed.wait()
            assert "calc__extra" in {t.name for t in (await client.list_tools()).tools}


@pytest.mark.parametrize(("protocol", "mode"), ERAS[:2])
async def test_a_cancelled_call_is_cancelled_upstream_and_the_connection_stays_usable(
    calc_http, protocol, mode
):
    servers = {"calc": http_server_config(calc_http.url, protocol=protocol)}
    async with gateway_for(servers) as gateway, sdk_client(gateway, mode=mode) as client:
        transport = gateway.upstreams["calc"]._transport
        long_lived = set(transport._requests)  # a 2026-07-28 connection keeps a subscriptions/listen open
        with anyio.move_on_after(
            1
        ):  # the SDK client sends notifications/cancelled when its scope is cancelled
            await client.call_tool("calc__wait_for_cancel", {})
        with anyio.fail_after(20):
            while (await client.call_tool("calc__cancelled_calls", {})).structured_content != {"result": 1}:
                await anyio.sleep(0.05)
            while gateway.upstreams["calc"].describe()["inFlight"]:
                await anyio.sleep(0.02)
            while set(transport._requests) != long_lived:  # the call's response stream was closed
                await anyio.sleep(0.02)
        assert (await client.call_tool("calc__add", {"a": 1, "b": 1})).structured_content == {"result": 2}


@pytest.mark.parametrize(("protocol", "mode"), ERAS[:2])
async def test_an_upstream_killed_mid_call_fails_fast_and_its_tools_rejoin_after_restart(protocol, mode):
    changes = 0

    async def on_message(message: object) -> None:
        nonlocal changes
        if isinstance(message, types.ToolListChangedNotification):
            changes += 1

    async with running(calc_peer("http")) as peer:
        servers = {"calc": http_server_config(peer.url, protocol=protocol)}
        async with (
            gateway_for(servers) as gateway,
            sdk_client(gateway, mode=mode, message_handler=on_message) as client,
        ):
            with anyio.fail_after(15), pytest.raises(MCPError) as info:
                await client.call_tool("calc__crash", {})  # the server process exits mid-call
            assert info.value.error.code == -31010
            await wait_state(gateway, "calc", is_down)
            assert (await client.list_tools()).tools == []
            await peer.start()  # same port
            await wait_state(gateway, "calc", is_ready)
            assert "calc__add" in {t.name for t in (await client.list_tools()).tools}
            assert (await client.call_tool("calc__add", {"a": 2, "b": 3})).structured_content == {"result": 5}
            if mode == "legacy":  # a 2026-07-28 client learns of list changes through subscriptions/listen
                assert changes >= 2  # tools left, then rejoined


async def test_a_session_the_upstream_forgot_is_reinitialized_transparently(calc_http: Peer):
    changed = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    servers = {"calc": http_server_config(calc_http.url, protocol="legacy")}
    async with (
        gateway_for(servers) as gateway,
        sdk_client(gateway, mode="legacy", message_handler=on_message) as client,
    ):
        conn = gateway.upstreams["calc"]
        old = conn._transport.session_id
        assert old
        # Somebody else ends our upstream session: every later request with it gets 404.
        async with httpx.AsyncClient() as http:
            gone = await http.delete(calc_http.url, headers={"mcp-session-id": old})
            assert gone.status_code == 200
            assert (
                await http.post(calc_http.url, headers={"mcp-session-id": old}, json={})
            ).status_code == 404
        with anyio.fail_after(20):
            await changed.wait()
            await wait_state(
                gateway, "calc", lambda c: c.state is State.READY and c._transport.session_id != old
            )
        assert conn.restarts == 1
        assert (await client.call_tool("calc__add", {"a": 4, "b": 5})).structured_content == {"result": 9}
