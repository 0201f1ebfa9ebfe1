"""The one error boundary: `error_response` (JSON-RPC) and `http_error` (HTTP)."""

from __future__ import annotations

import orjson

from bastion.errors import (
    Denied,
    InternalError,
    Reason,
    SessionNotFound,
    UpstreamTimeout,
    error_response,
    http_error,
)
from bastion.pipeline.verdicts import Reject


def test_a_bastion_error_becomes_its_own_json_rpc_error_with_its_reason():
    reply = error_response(7, UpstreamTimeout("no answer", data={"server": "calc"}))

    assert reply == {
        "jsonrpc": "2.0",
        "id": 7,
        "error": {
            "code": -31011,
            "message": "no answer",
            "data": {"reason": "upstream_timeout", "server": "calc"},
        },
    }


def test_a_foreign_exception_becomes_a_generic_internal_error_that_reveals_nothing():
    reply = error_response("a", KeyError("secret-key-name"))

    assert reply["error"] == InternalError("internal error").to_jsonrpc_error()
    assert "secret" not in orjson.dumps(reply).decode()


def test_a_pipeline_reject_is_answered_with_the_error_it_carries():
    reject = Reject(error=Denied("blocked", reason=Reason.GUARDRAIL_BLOCKED), explanation="rule x")

    reply = error_response(None, reject)

    assert reply["id"] is None
    assert reply["error"]["code"] == -31001
    assert reply["error"]["data"] == {"reason": "guardrail_blocked"}
    assert "rule x" not in orjson.dumps(reply).decode()  # the explanation is for audit only


def test_an_http_error_has_the_errors_status_and_its_json_rpc_body():
    answer = http_error(SessionNotFound("Session not found"), request_id=3)

    assert answer.status == 404
    assert orjson.loads(answer.body) == error_response(3, SessionNotFound("Session not found"))


def test_an_http_error_outside_mcp_answers_in_the_oauth_form_with_the_status_asked_for():
    answer = http_error(
        Denied("nope"),
        status=401,
        problem=("invalid_token", "expired"),
        headers=[(b"www-authenticate", b"Bearer")],
    )

    assert (answer.status, orjson.loads(answer.body)) == (
        401,
        {"error": "invalid_token", "error_description": "expired"},
    )
    assert answer.headers == ((b"www-authenticate", b"Bearer"),)
    assert orjson.loads(http_error(Denied("x"), problem=("unauthorized", "")).body) == {
        "error": "unauthorized"
    }
