"""JSON-RPC 2.0 framing: parse bytes once into plain dicts, classify them, and build replies. No I/O here.

Rules:
- A message is a dict. Parsing validates shape only (jsonrpc, id, method, params types); MCP meaning is elsewhere.
- Ids are strings or integers (never bool, never null on requests), bounded in size.
- Nesting depth and total size are bounded before anything else looks at the payload.
- Serialising uses orjson; a message that was not changed is forwarded as the bytes it arrived as when possible.
"""

from __future__ import annotations

import enum
from typing import Any, Final

import orjson

from bastion.errors import InvalidRequest, ParseError, PayloadTooLarge

# Re-exported for modules that still import them from here; new code imports `bastion.types`.
from bastion.types import JsonDict as JsonDict
from bastion.types import RequestId as RequestId

MAX_ID_LENGTH: Final = 256
"""Characters; longer string ids (or integers beyond 64 bits) are refused as invalid."""
DEFAULT_MAX_DEPTH: Final = 64
"""Nesting levels of arrays/objects allowed in one message."""


class Kind(enum.Enum):
    """What a parsed JSON-RPC message is."""

    REQUEST = "request"
    NOTIFICATION = "notification"
    RESPONSE = "response"
    ERROR = "error"


def loads(data: bytes | str, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse JSON text; raises `ParseError` for invalid JSON or UTF-8 and `PayloadTooLarge` for deep nesting."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ParseError("invalid JSON") from exc
    if max_depth and _too_deep(value, max_depth):
        raise PayloadTooLarge("message nested too deeply", data={"maxDepth": max_depth})
    return value


def dumps(message: Any) -> bytes:
    """Serialise a message to compact JSON bytes."""
    return orjson.dumps(message)


def _too_deep(value: Any, limit: int) -> bool:
    # Iterative so that hostile input cannot exhaust the Python stack.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, (dict, list)))
        elif isinstance(item, list):
            if depth > limit:
                return True
            stack.extend((v, depth + 1) for v in item if isinstance(v, (dict, list)))
    return False


def as_dict(value: Any) -> JsonDict:
    """`value` if it is a JSON object, else an empty one (for optional members of untrusted messages)."""
    return value if isinstance(value, dict) else {}


def valid_id(value: Any) -> bool:
    """True for a usable JSON-RPC id: a bounded string or a 64-bit integer (bool is not an integer here)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return -(2**63) <= value < 2**63
    if isinstance(value, str):
        return len(value) <= MAX_ID_LENGTH
    return False


def classify(message: Any) -> Kind:
    """Validate one JSON-RPC message's shape and say what it is; raises `InvalidRequest` otherwise."""
    if not isinstance(message, dict):
        raise InvalidRequest("a JSON-RPC message must be an object")
    if message.get("jsonrpc") != "2.0":
        raise InvalidRequest('missing or wrong "jsonrpc" member')
    method = message.get("method")
    has_id = "id" in message
    if method is not None:
        if not isinstance(method, str) or not method:
            raise InvalidRequest('"method" must be a non-empty string')
        params = message.get("params")
        if params is not None and not isinstance(params, dict):
            raise InvalidRequest('"params" must be an object')
        if not has_id:
            return Kind.NOTIFICATION
        if not valid_id(message["id"]):
            raise InvalidRequest('"id" must be a string or an integer')
        return Kind.REQUEST
    if not has_id:
        raise InvalidRequest("message is neither a request, a notification nor a response")
    if "result" in message:
        if "error" in message:
            raise InvalidRequest("a response has either result or error, not both")
        return Kind.RESPONSE
    error = message.get("error")
    if isinstance(error, dict) and isinstance(error.get("code"), int):
        return Kind.ERROR
    raise InvalidRequest("a response needs a result or an error object")


def request(request_id: RequestId, method: str, params: JsonDict | None = None) -> JsonDict:
    """Build a request message."""
    message: JsonDict = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def notification(method: str, params: JsonDict | None = None) -> JsonDict:
    """Build a notification message."""
    message: JsonDict = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return message


def result(request_id: RequestId | None, value: JsonDict) -> JsonDict:
    """Build a success response."""
    return {"jsonrpc": "2.0", "id": request_id, "result": value}


def error(request_id: RequestId | None, code: int, message: str, data: Any = None) -> JsonDict:
    """Build an error response from raw parts (prefer `bastion.errors.error_response` for exceptions)."""
    err: JsonDict = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": err}
