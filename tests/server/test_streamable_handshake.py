"""Streamable HTTP, handshake era, on the wire: sessions, headers, JSON vs SSE replies, GET streams, resumption."""

from __future__ import annotations

import re

import anyio
import httpx
import orjson
import pytest

from bastion.pipeline.notice import NoticeKind
from tests.server.conftest import (
    INIT_PARAMS,
    body,
    initialize,
    post_headers,
    read_events,
    request,
    running,
    sse_events,
)
from tests.server.peer import Peer

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_initialize_answers_json_with_a_visible_ascii_session_id():
    async with running() as app, httpx.AsyncClient() as http:
        response = await http.post(
            app.mcp, content=body(request(1, "initialize", INIT_PARAMS)), headers=post_headers()
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert re.fullmatch(r"[\x21-\x7e]{20,}", response.headers["mcp-session-id"])
        result = response.json()["result"]
        assert result["protocolVersion"] == "2025-11-25"
        assert result["serverInfo"]["name"] == "bastion"


async def test_a_call_whose_first_message_is_its_response_is_answered_as_json():
    async with running() as app, httpx.AsyncClient() as http:
        sid = await initialize(http, app.mcp)
        call = request(2, "tools/call", {"name": "calc__add", "arguments": {"a": 2, "b": 40}})
        response = await http.post(app.mcp, content=body(call), headers=post_headers(sid, "2025-11-25"))
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json()["result"]["structuredContent"] == {"result": 42}


async def test_progress_before_the_response_turns_the_reply_into_an_sse_stream_with_event_ids():
    async with running() as app, httpx.AsyncClient() as http:
        sid = await initialize(http, app.mcp)
        call = request(
            3,
            "tools/call",
            {"name": "calc__slow_count", "arguments": {"n": 3}, "_meta": {"progressToken": "tok"}},
        )
        response = await http.post(app.mcp, content=body(call), headers=post_headers(sid, "2025-11-25"))
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        assert response.headers["x-accel-buffering"] == "no"
        events = sse_events(response.text)
        assert events[0]["data"] == "" and "id" in events[0]  # the priming event of 2025-11-25
        messages = [orjson.loads(e["data"]) for e in events[1:]]
        assert [m["params"]["progress"] for m in messages[:-1]] == [1, 2, 3]
        assert all(m["params"]["progressToken"] == "tok" for m in messages[:-1])
        assert messages[-1]["id"] == 3 and messages[-1]["result"]["content"][0]["text"] == "counted 3"
        ids = [e["id"] for e in events]
        assert len(set(ids[1:])) == len(ids) - 1 and all(
            i.startswith(ids[0].split("-")[0] + "-") for i in ids
        )


async def test_requests_without_a_session_id_are_400_and_unknown_ids_are_404():
    async with running() as app, httpx.AsyncClient() as http:
        ping = body(request(1, "ping"))
        missing = await http.post(app.mcp, content=ping, headers=post_headers())
        assert missing.status_code == 400 and missing.json()["error"]["code"] == -32600
        unknown = await http.post(app.mcp, content=ping, headers=post_headers("nope-" + "x" * 30))
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == -32001
        for verb in ("GET", "DELETE"):
            assert (await http.request(verb, app.mcp)).status_code == 400
            assert (await http.request(verb, app.mcp, headers={"mcp-session-id": "nope"})).status_code == 404


async def test_protocol_version_header_missing_is_accepted_and_unsupported_is_400():
    async with running() as app, httpx.AsyncClient() as http:
        sid = await initialize(http, app.mcp)
        ping = body(request(5, "ping"))
        assert (await http.post(app.mcp, content=ping, headers=post_headers(sid))).json()["result"] == {}
        bad = await http.post(app.mcp, content=ping, headers=post_headers(sid, "1999-01-01"))
        assert bad.status_code == 400
        assert bad.json()["error"]["data"]["supported"][0] == "2026-07-28"
        assert (
            await http.get(app.mcp, headers={"mcp-session-id": sid, "mcp-protocol-version": "x"})
        ).status_code == 400


async def test_notifications_and_responses_are_accepted_with_202_and_no_body():
    async with running() as app, httpx.AsyncClient() as http:
        sid = await initialize(http, app.mcp)
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}
        accepted = await http.post(app.mcp, content=body(cancel), headers=post_headers(sid))
        assert accepted.status_code == 202 and accepted.content == b""
        answer = {"jsonrpc": "2.0", "id": "bastion-77", "result": {}}
        accepted = await http.post(app.mcp, content=body(answer), headers=post_headers(sid))
        assert accepted.status_code == 202 and accepted.content == b""


async def test_delete_ends_the_session_and_its_id_is_then_unknown():
    async with running() as app, httpx.AsyncClient() as http:
        sid = await initialize(http, app.mcp)
        assert (await http.delete(app.mcp, headers={"mcp-session-id": sid})).status_code == 204
        after = await http.post(app.mcp, content=body(request(1, "ping")), headers=post_headers(sid))
        assert after.status_code == 404
        assert (await http.delete(app.mcp, headers={"mcp-session-id": sid})).status_code == 404
        assert app.gateway.sessions == {}


async def test_content_type_and_accept_are_checked():
    async with running() as app, httpx.AsyncClient() as http:
        init = body(request(1, "initialize", INIT_PARAMS))
        plain = await http.post(app.mcp, content=init, headers={"content-type": "text/plain"})
        assert plain.status_code == 415
        html = await http.post(app.mcp, content=init, headers=post_headers(accept="text/html"))
        assert html.status_code == 406
        sid = await initialize(http, app.mcp)
        get = await http.get(app.mcp, headers={"mcp-session-id": sid, "accept": "application/json"})
        assert get.status_code == 406
        assert (await http.put(app.mcp)).status_code == 405


async def test_a_request_id_already_in_flight_is_refused():
    peer = Peer()
    async with running(peer=peer) as app, httpx.AsyncClient() as http:
        sid = await initialize(http, app.mcp)
        hold = body(request(7, "tools/call", {"name": "peer__hold", "arguments": {}}))
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: http.post(app.mcp, content=hold, headers=post_headers(sid)))
            with anyio.fail_after(10):
                await peer.started.wait()
            again = await http.post(app.mcp, content=hold, headers=post_headers(sid))
            assert again.status_code == 400 and again.json()["id"] == 7
            peer.release.set()


async def test_get_stream_carries_list_changed_and_a_second_get_is_409():
    async with running() as app, httpx.AsyncClient(timeout=10) as http:
        sid = await initialize(http, app.mcp)
        headers = {"mcp-session-id": sid, "accept": "text/event-stream"}
        async with http.stream("GET", app.mcp, headers=headers) as stream:
            assert stream.headers["content-type"] == "text/event-stream"
            second = await http.get(app.mcp, headers=headers)
            assert second.status_code == 409
            grow = body(request(2, "tools/call", {"name": "calc__grow", "arguments": {}}))
            assert (await http.post(app.mcp, content=grow, headers=post_headers(sid))).status_code == 200
            with anyio.fail_after(10):
                events = await read_events(stream, 1)
            assert orjson.loads(events[0]["data"])["method"] == "notifications/tools/list_changed"
            assert events[0]["id"].startswith("0-")


async def test_last_event_id_resumes_the_standalone_stream_without_other_streams_events():
    async with running() as app, httpx.AsyncClient(timeout=10) as http:
        sid = await initialize(http, app.mcp)
        headers = {"mcp-session-id": sid, "accept": "text/event-stream"}
        async with http.stream("GET", app.mcp, headers=headers) as stream:
            await app.gateway.notify_sessions("notifications/tools/list_changed")
            with anyio.fail_after(10):
                first = (await read_events(stream, 1))[0]
        # While no GET stream is open: one standalone message, and one POST stream with progress events.
        await app.gateway.notify_sessions("notifications/prompts/list_changed")
        call = request(
            3,
            "tools/call",
            {"name": "calc__slow_count", "arguments": {"n": 2}, "_meta": {"progressToken": 1}},
        )
        streamed = await http.post(app.mcp, content=body(call), headers=post_headers(sid))
        assert streamed.headers["content-type"] == "text/event-stream"
        async with http.stream("GET", app.mcp, headers={**headers, "last-event-id": first["id"]}) as resumed:
            with anyio.fail_after(10):
                events = await read_events(resumed, 1)
        methods = [orjson.loads(e["data"]).get("method") for e in events]
        assert methods == ["notifications/prompts/list_changed"]


async def test_last_event_id_of_a_post_stream_replays_only_that_streams_later_events():
    async with running() as app, httpx.AsyncClient(timeout=10) as http:
        sid = await initialize(http, app.mcp)
        call = request(
            4,
            "tools/call",
            {"name": "calc__slow_count", "arguments": {"n": 3}, "_meta": {"progressToken": 1}},
        )
        events = sse_events((await http.post(app.mcp, content=body(call), headers=post_headers(sid))).text)
        await app.gateway.notify_sessions("notifications/tools/list_changed")  # a standalone event in between
        first_progress = events[1]["id"]
        headers = {"mcp-session-id": sid, "accept": "text/event-stream", "last-event-id": first_progress}
        resumed = await http.get(app.mcp, headers=headers)
        replayed = [orjson.loads(e["data"]) for e in sse_events(resumed.text)]
        assert [m.get("params", {}).get("progress") for m in replayed[:-1]] == [2, 3]
        assert replayed[-1]["id"] == 4 and "result" in replayed[-1]
        bad = await http.get(app.mcp, headers={**headers, "last-event-id": "garbage"})
        assert bad.status_code == 400
        gone = await http.get(app.mcp, headers={**headers, "last-event-id": "999-1"})
        assert gone.status_code == 400


async def test_an_interrupted_post_stream_is_resumed_on_a_get_and_finishes_there():
    peer = Peer()
    async with running(peer=peer) as app, httpx.AsyncClient(timeout=10) as http:
        sid = await initialize(http, app.mcp)
        call = request(
            5, "tools/call", {"name": "peer__tick", "arguments": {"n": 3}, "_meta": {"progressToken": 1}}
        )
        async with http.stream("POST", app.mcp, content=body(call), headers=post_headers(sid)) as first:
            with anyio.fail_after(10):
                (progress,) = await read_events(first, 1)
        # The client went away after the first progress event; the call goes on and finishes unheard.
        assert orjson.loads(progress["data"])["params"]["progress"] == 1
        peer.release.set()
        headers = {"mcp-session-id": sid, "accept": "text/event-stream", "last-event-id": progress["id"]}
        async with http.stream("GET", app.mcp, headers=headers) as resumed:
            with anyio.fail_after(10):
                events = await read_events(resumed, 3)
        messages = [orjson.loads(e["data"]) for e in events]
        assert [m["params"]["progress"] for m in messages[:2]] == [2, 3]
        assert messages[2]["id"] == 5 and messages[2]["result"]["content"][0]["text"] == "ticked 3"


async def test_batches_are_refused_on_sessions_that_did_not_negotiate_2025_03_26():
    async with running() as app, httpx.AsyncClient() as http:
        sid = await initialize(http, app.mcp)
        batch = orjson.dumps([request(1, "ping"), request(2, "ping")])
        refused = await http.post(app.mcp, content=batch, headers=post_headers(sid))
        assert refused.status_code == 400 and refused.json()["error"]["code"] == -32600
        without_session = await http.post(app.mcp, content=batch, headers=post_headers())
        assert without_session.status_code == 400 and without_session.json()["error"]["code"] == -32600


async def test_a_2025_03_26_session_accepts_a_batch_and_answers_with_an_array():
    async with running() as app, httpx.AsyncClient() as http:
        sid = await initialize(http, app.mcp, "2025-03-26")
        batch = [
            request(1, "tools/call", {"name": "calc__add", "arguments": {"a": 1, "b": 2}}),
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 42}},
            request("two", "ping"),
            {"jsonrpc": "2.0", "id": 3, "method": 7},
        ]
        response = await http.post(
            app.mcp, content=orjson.dumps(batch), headers=post_headers(sid, "2025-03-26")
        )
        assert response.status_code == 200
        replies = {str(r["id"]): r for r in response.json()}
        assert replies["1"]["result"]["structuredContent"] == {"result": 3}
        assert replies["two"]["result"] == {}
        assert replies["None"]["error"]["code"] == -32600
        only_notifications = [
            {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}}
        ]
        accepted = await http.post(
            app.mcp, content=orjson.dumps(only_notifications), headers=post_headers(sid)
        )
        assert accepted.status_code == 202
        empty = await http.post(app.mcp, content=b"[]", headers=post_headers(sid))
        assert empty.status_code == 400


async def test_a_session_of_another_transport_is_not_reachable_over_http():
    async with running() as app, httpx.AsyncClient() as http:
        from bastion.testing import client_transport

        async with client_transport(app.gateway) as (_read, _write):
            (memory_id,) = app.gateway.sessions
            response = await http.post(
                app.mcp, content=body(request(1, "ping")), headers=post_headers(memory_id)
            )
            assert response.status_code == 404


async def test_refusals_are_emitted_as_protocol_error_notices():
    async with running() as app, httpx.AsyncClient() as http:
        await http.post(app.mcp, content=b"{nope", headers=post_headers())
        await app.recorder.wait_for(lambda: bool(app.recorder.kinds(NoticeKind.PROTOCOL_ERROR)))
        notice = app.recorder.kinds(NoticeKind.PROTOCOL_ERROR)[0]
        assert notice.detail["reason"] == "parse_error" and notice.detail["status"] == 400
        assert notice.remote == "127.0.0.1"


async def test_a_sealed_session_id_from_another_replica_is_restored_and_a_deleted_one_is_not():
    cluster = {"cluster": {"session_secret": "shared-by-every-replica-0123456789"}}
    async with running(cluster) as first, running(cluster) as second, httpx.AsyncClient() as http:
        sid = await initialize(http, first.mcp)
        assert sid.startswith("s1.")
        listed = await http.post(
            second.mcp, content=body(request(2, "tools/list")), headers=post_headers(sid)
        )
        assert listed.status_code == 200 and listed.json()["result"]["tools"]
        assert sid in second.gateway.sessions
        assert (await http.delete(second.mcp, headers={"mcp-session-id": sid})).status_code == 204
        again = await http.post(second.mcp, content=body(request(3, "ping")), headers=post_headers(sid))
        assert again.status_code == 404
        forged = sid[:-4] + ("AAAA" if not sid.endswith("AAAA") else "BBBB")
        assert (
            await http.post(second.mcp, content=body(request(4, "ping")), headers=post_headers(forged))
        ).status_code == 404
