"""Streamable HTTP, 2026-07-28 (stateless) on the wire: header/body agreement, statuses, cancellation, listen."""

from __future__ import annotations

import base64

import anyio
import httpx
import orjson
import pytest
from mcp import Client

from bastion.server.modern import decode_header
from tests.server.conftest import MODERN, SseReader, body, modern_params, post_headers, request, running
from tests.server.peer import Peer

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def _call(request_id=1, name="calc__add", arguments=None, version=MODERN):
    params = modern_params({"name": name, "arguments": arguments or {"a": 1, "b": 2}}, version)
    return body(request(request_id, "tools/call", params))


def _headers(method="tools/call", name: str | None = "calc__add", version=MODERN, **extra):
    headers = post_headers(version=version, **{"mcp-method": method})
    if name is not None:
        headers["mcp-name"] = name
    headers.update(extra)
    return headers


async def test_a_modern_call_is_answered_as_json_with_result_type_and_server_info():
    async with running() as app, httpx.AsyncClient() as http:
        response = await http.post(app.mcp, content=_call(), headers=_headers())
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        assert "mcp-session-id" not in response.headers
        result = response.json()["result"]
        assert result["structuredContent"] == {"result": 3} and result["resultType"] == "complete"
        assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "bastion"
        assert app.gateway.sessions == {}  # stateless: nothing stays behind


@pytest.mark.parametrize(
    ("case", "headers"),
    [
        ("Mcp-Name differs", {"mcp-name": "calc__echo"}),
        ("Mcp-Name missing", {"mcp-name": None}),
        ("Mcp-Method differs", {"mcp-method": "tools/list"}),
        ("Mcp-Method missing", {"mcp-method": None}),
        ("version header differs from body", {"mcp-protocol-version": "2025-11-25"}),
        ("version header missing", {"mcp-protocol-version": None}),
    ],
)
async def test_routing_headers_that_disagree_with_the_body_are_400_header_mismatch(case, headers):
    async with running() as app, httpx.AsyncClient() as http:
        sent = {k: v for k, v in {**_headers(), **headers}.items() if v is not None}
        response = await http.post(app.mcp, content=_call(), headers=sent)
        assert response.status_code == 400, case
        assert response.json()["error"]["code"] == -32020 and response.json()["id"] == 1


async def test_a_repeated_routing_header_is_a_mismatch():
    async with running() as app, httpx.AsyncClient() as http:
        headers = [(k, v) for k, v in _headers().items()] + [("mcp-name", "calc__add")]
        response = await http.post(app.mcp, content=_call(), headers=headers)
        assert response.status_code == 400 and response.json()["error"]["code"] == -32020


async def test_an_unsupported_version_is_400_naming_the_supported_ones():
    async with running() as app, httpx.AsyncClient() as http:
        response = await http.post(
            app.mcp, content=_call(version="2099-01-01"), headers=_headers(version="2099-01-01")
        )
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == -32022 and error["data"]["supported"] == [MODERN]


async def test_a_missing_envelope_is_400_invalid_params():
    async with running() as app, httpx.AsyncClient() as http:
        plain = body(request(1, "tools/call", {"name": "calc__add", "arguments": {"a": 1, "b": 2}}))
        response = await http.post(app.mcp, content=plain, headers=_headers())
        assert response.status_code == 400 and response.json()["error"]["code"] == -32602


async def test_unknown_methods_are_404_and_batches_are_400():
    async with running() as app, httpx.AsyncClient() as http:
        unknown = body(request(1, "nope/nothing", modern_params()))
        response = await http.post(app.mcp, content=unknown, headers=_headers("nope/nothing", None))
        assert response.status_code == 404 and response.json()["error"]["code"] == -32601
        batch = orjson.dumps([request(1, "server/discover", modern_params())])
        refused = await http.post(app.mcp, content=batch, headers=_headers("server/discover", None))
        assert refused.status_code == 400 and refused.json()["error"]["code"] == -32600


async def test_get_and_delete_in_modern_mode_are_405_and_notifications_202():
    async with running() as app, httpx.AsyncClient() as http:
        for verb in ("GET", "DELETE"):
            response = await http.request(verb, app.mcp, headers={"mcp-protocol-version": MODERN})
            assert response.status_code == 405 and response.headers["allow"] == "POST"
        note = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": modern_params({"requestId": 1}),
        }
        accepted = await http.post(
            app.mcp, content=body(note), headers=_headers("notifications/cancelled", None)
        )
        assert accepted.status_code == 202


async def test_server_discover_answers_the_sdk_probe():
    async with running() as app, httpx.AsyncClient() as http:
        probe = body(request(1, "server/discover", modern_params()))
        response = await http.post(app.mcp, content=probe, headers=_headers("server/discover", None))
        assert response.status_code == 200
        assert response.json()["result"]["supportedVersions"] == [MODERN]


async def test_progress_makes_the_reply_an_sse_stream_scoped_to_the_request():
    async with running() as app, httpx.AsyncClient() as http:
        params = modern_params({"name": "calc__slow_count", "arguments": {"n": 2}})
        params["_meta"]["progressToken"] = "p"
        call = body(request(3, "tools/call", params))
        response = await http.post(app.mcp, content=call, headers=_headers(name="calc__slow_count"))
        assert response.headers["content-type"] == "text/event-stream"
        lines = [orjson.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
        assert [m["params"]["progress"] for m in lines[:-1]] == [1, 2]
        assert lines[-1]["id"] == 3 and lines[-1]["result"]["resultType"] == "complete"


async def test_closing_the_response_cancels_the_call_upstream():
    peer = Peer()
    async with running(peer=peer) as app, httpx.AsyncClient(timeout=10) as http:
        call = body(request(4, "tools/call", modern_params({"name": "peer__hold", "arguments": {}})))
        async with anyio.create_task_group() as tg:

            async def post() -> None:
                async with http.stream("POST", app.mcp, content=call, headers=_headers(name="peer__hold")):
                    pass

            async def close_when_started() -> None:
                with anyio.fail_after(10):
                    await peer.started.wait()
                tg.cancel_scope.cancel()  # drops the connection mid-request

            tg.start_soon(post)
            tg.start_soon(close_when_started)
        with anyio.fail_after(10):
            await peer.cancelled.wait()
        await app.recorder.wait_for(lambda: any(e.outcome == "cancelled" for e in app.recorder.exchanges))


async def test_subscriptions_listen_delivers_only_requested_notifications_stamped_with_its_id():
    async with running() as app, httpx.AsyncClient(timeout=10) as http:
        listen = request(
            "L1", "subscriptions/listen", modern_params({"notifications": {"toolsListChanged": True}})
        )
        headers = _headers("subscriptions/listen", None)
        async with http.stream("POST", app.mcp, content=body(listen), headers=headers) as stream:
            assert stream.headers["content-type"] == "text/event-stream"
            reader = SseReader(stream)
            with anyio.fail_after(10):
                (ack,) = await reader.take(1)
            ack_message = orjson.loads(ack["data"])
            assert ack_message["method"] == "notifications/subscriptions/acknowledged"
            assert ack_message["params"]["notifications"] == {"toolsListChanged": True}
            await app.gateway.notify_sessions("notifications/prompts/list_changed")  # not asked for
            await app.gateway.notify_sessions("notifications/tools/list_changed")
            with anyio.fail_after(10):
                (event,) = await reader.take(1)
            message = orjson.loads(event["data"])
            assert message["method"] == "notifications/tools/list_changed"
            assert message["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "L1"
        json_only = await http.post(
            app.mcp, content=body(listen), headers={**headers, "accept": "application/json"}
        )
        assert json_only.status_code == 406


async def test_the_sdk_client_listen_hears_list_changed_through_bastion():
    async with running() as app, Client(app.mcp, mode=MODERN) as client:
        async with client.listen(tools_list_changed=True) as subscription:
            assert subscription.honored.tools_list_changed
            await client.call_tool("calc__grow", {})
            with anyio.fail_after(10):
                event = await subscription.__anext__()
            assert type(event).__name__ == "ToolsListChanged"


def test_mcp_name_header_values_may_be_base64_wrapped():
    encoded = "=?base64?" + base64.b64encode("résumé".encode()).decode() + "?="
    assert decode_header(encoded) == "résumé"
    assert decode_header("plain") == "plain"
    assert decode_header("=?base64?not base64!?=") is None
    assert decode_header("=?base64?" + base64.b64encode(b"\xff").decode() + "?=") is None
