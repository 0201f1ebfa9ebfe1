import pytest

from bastion.errors import InvalidRequest, ParseError, PayloadTooLarge
from bastion.protocol import jsonrpc, versions
from bastion.protocol.jsonrpc import Kind


def test_classify_recognises_each_message_kind():
    assert jsonrpc.classify({"jsonrpc": "2.0", "id": 1, "method": "ping"}) is Kind.REQUEST
    assert jsonrpc.classify({"jsonrpc": "2.0", "method": "notifications/initialized"}) is Kind.NOTIFICATION
    assert jsonrpc.classify({"jsonrpc": "2.0", "id": "a", "result": {}}) is Kind.RESPONSE
    assert jsonrpc.classify({"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "x"}}) is Kind.ERROR


@pytest.mark.parametrize(
    "message",
    [
        [],
        "x",
        {"id": 1, "method": "ping"},
        {"jsonrpc": "1.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "id": None, "method": "ping"},
        {"jsonrpc": "2.0", "id": True, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1.5, "method": "ping"},
        {"jsonrpc": "2.0", "id": "x" * 300, "method": "ping"},
        {"jsonrpc": "2.0", "id": 2**70, "method": "ping"},
        {"jsonrpc": "2.0", "id": 1, "method": 3},
        {"jsonrpc": "2.0", "id": 1, "method": "x", "params": [1]},
        {"jsonrpc": "2.0", "id": 1},
        {"jsonrpc": "2.0", "id": 1, "result": {}, "error": {"code": 1, "message": ""}},
    ],
)
def test_classify_refuses_invalid_messages(message):
    with pytest.raises(InvalidRequest):
        jsonrpc.classify(message)


def test_loads_refuses_invalid_json_and_invalid_utf8():
    with pytest.raises(ParseError):
        jsonrpc.loads(b"{nope")
    with pytest.raises(ParseError):
        jsonrpc.loads(b'{"a": "\xff"}')


def test_loads_refuses_deep_nesting_without_recursion():
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises((PayloadTooLarge, ParseError)):
        jsonrpc.loads(deep, max_depth=64)
    with pytest.raises(PayloadTooLarge):
        jsonrpc.loads(b"[" * 70 + b"]" * 70, max_depth=64)


def test_negotiate_answers_with_the_requested_version_or_our_newest():
    assert versions.negotiate("2025-06-18") == "2025-06-18"
    assert versions.negotiate("1999-01-01") == versions.LATEST_HANDSHAKE
    assert versions.negotiate(None) == versions.LATEST_HANDSHAKE


def test_envelope_version_detects_2026_requests():
    params = {"_meta": {versions.META_PROTOCOL_VERSION: "2026-07-28"}}
    assert versions.envelope_version(params) == "2026-07-28"
    assert versions.envelope_version({}) is None
