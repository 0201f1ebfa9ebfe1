"""Property-based fuzzing of the JSON-RPC layer: no input crashes it, every refusal is one of our errors."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bastion.errors import BastionError, InvalidRequest, ParseError, PayloadTooLarge
from bastion.protocol import jsonrpc

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
ids = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=300),
    st.lists(st.integers()),
)
messages = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2.0, None]),
        "id": ids,
        "method": st.one_of(st.text(max_size=30), st.integers(), st.none()),
        "params": json_values,
        "result": json_values,
        "error": json_values,
    },
)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_parse_or_raise_a_parse_error(data):
    try:
        jsonrpc.loads(data)
    except (ParseError, PayloadTooLarge):
        pass


@settings(max_examples=600, deadline=None)
@given(messages)
def test_classify_accepts_only_well_formed_messages_and_refuses_the_rest_cleanly(message):
    try:
        kind = jsonrpc.classify(message)
    except InvalidRequest as exc:
        error = exc.to_jsonrpc_error()
        assert error["code"] == -32600 and error["data"]["reason"] == "invalid_request"
        return
    assert message["jsonrpc"] == "2.0"
    if kind is jsonrpc.Kind.REQUEST:
        assert isinstance(message["method"], str) and message["method"]
        assert jsonrpc.valid_id(message["id"])
        assert message.get("params") is None or isinstance(message["params"], dict)
    elif kind is jsonrpc.Kind.NOTIFICATION:
        assert "id" not in message
    elif kind is jsonrpc.Kind.RESPONSE:
        assert "result" in message and "error" not in message
    else:
        assert isinstance(message["error"]["code"], int)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=400))
def test_nesting_beyond_the_limit_is_refused_without_recursion(depth):
    text = "[" * depth + "]" * depth
    try:
        value = jsonrpc.loads(text, max_depth=64)
    except PayloadTooLarge:
        assert depth > 64
        return
    assert depth <= 64 and orjson.dumps(value) == text.encode()


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_valid_json_round_trips_through_loads_and_dumps(value):
    try:
        parsed = jsonrpc.loads(orjson.dumps(value))
    except BastionError:
        return  # too deep for the default limit
    assert parsed == value
