"""Bastion's one exception tree, and the one place that maps it to JSON-RPC and HTTP.

```
BastionError                    reason, jsonrpc_code, http_status, retryable
├── ConfigError                 a bad config key (carries its dotted path)
├── ProtocolError               the peer broke JSON-RPC or MCP
│   ├── ParseError              -32700  body is not JSON / not UTF-8
│   ├── InvalidRequest          -32600  not a JSON-RPC 2.0 message
│   ├── MethodNotFound          -32601  unknown method, or not routable
│   ├── InvalidParams           -32602  params missing or of the wrong shape
│   ├── SessionNotFound         -32001  unknown or terminated session (HTTP 404)
│   ├── HeaderMismatch          -32020  HTTP routing headers disagree with the body (2026-07-28)
│   └── UnsupportedVersion      -32022  protocol version we do not speak
├── PayloadTooLarge             -32600  body, message or depth over a limit (HTTP 413)
├── AuthError                   -32001  no or bad credentials (HTTP 401)
├── Denied                      -31001  a stage refused the call (policy, guardrail)
├── RateLimited                 -31002  over a rate limit or quota (data.retryAfter)
├── UpstreamError               the upstream side failed
│   ├── UpstreamUnavailable     -31010  down, crashed, or circuit open
│   └── UpstreamTimeout         -31011  no answer in time
├── AuditUnavailable            -31020  strict audit mode and the store is down
└── InternalError               -32603  a bug or a failed dependency (fail closed)
```

`error_response` (JSON-RPC) and `http_error` (HTTP) are the only places an error or a pipeline `Reject` becomes
an answer on the wire; everything else raises.

Each class carries a small `Reason` (used for audit and metric labels, never free text), its JSON-RPC code, the
HTTP status a transport should use when it has to answer at the HTTP level, and whether a retry may succeed.
Error *messages* must never contain secrets: build them from names and reasons, never from payload values.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol

import orjson

JSONRPC_PARSE_ERROR: Final = -32700
JSONRPC_INVALID_REQUEST: Final = -32600
JSONRPC_METHOD_NOT_FOUND: Final = -32601
JSONRPC_INVALID_PARAMS: Final = -32602
JSONRPC_INTERNAL_ERROR: Final = -32603


class Reason(enum.StrEnum):
    """Stable, low-cardinality reason codes for audit records and metric labels."""

    CONFIG = "config"
    PARSE = "parse_error"
    INVALID_REQUEST = "invalid_request"
    METHOD_NOT_FOUND = "method_not_found"
    INVALID_PARAMS = "invalid_params"
    SESSION_NOT_FOUND = "session_not_found"
    UNSUPPORTED_VERSION = "unsupported_version"
    HEADER_MISMATCH = "header_mismatch"
    TOO_LARGE = "too_large"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    POLICY_DENIED = "policy_denied"
    GUARDRAIL_BLOCKED = "guardrail_blocked"
    RATE_LIMITED = "rate_limited"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_TIMEOUT = "upstream_timeout"
    UPSTREAM_ERROR = "upstream_error"
    AUDIT_UNAVAILABLE = "audit_unavailable"
    CANCELLED = "cancelled"
    INTERNAL = "internal_error"


class BastionError(Exception):
    """Base of every error Bastion raises on purpose."""

    reason: ClassVar[Reason] = Reason.INTERNAL
    jsonrpc_code: ClassVar[int] = JSONRPC_INTERNAL_ERROR
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, data: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_jsonrpc_error(self) -> dict[str, Any]:
        """The `error` member of a JSON-RPC response for this exception."""
        data: dict[str, Any] = {"reason": str(self.reason)}
        if self.data:
            data.update(self.data)
        return {"code": self.jsonrpc_code, "message": self.message, "data": data}


class ConfigError(BastionError):
    """Invalid configuration; `path` names the bad key (e.g. `servers.time.command`)."""

    reason = Reason.CONFIG

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


class ProtocolError(BastionError):
    reason = Reason.INVALID_REQUEST
    jsonrpc_code = JSONRPC_INVALID_REQUEST
    http_status = 400


class ParseError(ProtocolError):
    reason = Reason.PARSE
    jsonrpc_code = JSONRPC_PARSE_ERROR


class InvalidRequest(ProtocolError):
    pass


class MethodNotFound(ProtocolError):
    reason = Reason.METHOD_NOT_FOUND
    jsonrpc_code = JSONRPC_METHOD_NOT_FOUND
    http_status = 404


class InvalidParams(ProtocolError):
    reason = Reason.INVALID_PARAMS
    jsonrpc_code = JSONRPC_INVALID_PARAMS


class SessionNotFound(ProtocolError):
    reason = Reason.SESSION_NOT_FOUND
    jsonrpc_code = -32001
    http_status = 404


class HeaderMismatch(ProtocolError):
    reason = Reason.HEADER_MISMATCH
    jsonrpc_code = -32020


class UnsupportedVersion(ProtocolError):
    reason = Reason.UNSUPPORTED_VERSION
    jsonrpc_code = -32022


class PayloadTooLarge(BastionError):
    reason = Reason.TOO_LARGE
    jsonrpc_code = JSONRPC_INVALID_REQUEST
    http_status = 413


class AuthError(BastionError):
    reason = Reason.UNAUTHENTICATED
    jsonrpc_code = -32001
    http_status = 401


class Forbidden(AuthError):
    reason = Reason.FORBIDDEN
    http_status = 403


class Denied(BastionError):
    """A stage refused the call; `reason` says which kind of stage."""

    reason = Reason.POLICY_DENIED
    jsonrpc_code = -31001
    http_status = 403

    def __init__(self, message: str, *, reason: Reason | None = None, data: dict[str, Any] | None = None):
        super().__init__(message, data=data)
        if reason is not None:
            self.reason = reason  # type: ignore[misc]


class RateLimited(BastionError):
    reason = Reason.RATE_LIMITED
    jsonrpc_code = -31002
    http_status = 429
    retryable = True


class UpstreamError(BastionError):
    reason = Reason.UPSTREAM_ERROR
    jsonrpc_code = -31010
    http_status = 502
    retryable = True


class UpstreamUnavailable(UpstreamError):
    reason = Reason.UPSTREAM_UNAVAILABLE
    http_status = 503


class UpstreamTimeout(UpstreamError):
    reason = Reason.UPSTREAM_TIMEOUT
    jsonrpc_code = -31011
    http_status = 504


class AuditUnavailable(BastionError):
    reason = Reason.AUDIT_UNAVAILABLE
    jsonrpc_code = -31020
    http_status = 503
    retryable = True


class InternalError(BastionError):
    """A fault inside Bastion. The message given to clients is generic; details go to the log."""


class Refusal(Protocol):
    """Anything that carries the error a client receives instead of a result (the pipeline's `Reject`)."""

    @property
    def error(self) -> BastionError: ...


def error_from_exception(exc: BaseException | Refusal) -> BastionError:
    """Translate any exception (or a refusal) into a `BastionError` for the wire, hiding foreign internals."""
    if isinstance(exc, BastionError):
        return exc
    if isinstance(exc, BaseException):
        return InternalError("internal error")
    return exc.error


def error_response(request_id: Any, exc: BaseException | Refusal) -> dict[str, Any]:
    """The one place an error or a pipeline `Reject` becomes a JSON-RPC error response.

    Args:
        request_id: The id of the request being answered (None when it is unknown: the reply's `id` is null).
        exc: Any exception (a foreign one becomes a generic `InternalError`) or a `Reject`.
    """
    return {"jsonrpc": "2.0", "id": request_id, "error": error_from_exception(exc).to_jsonrpc_error()}


class Cancelled(BastionError):
    """The client cancelled its request (what audit records; the client itself gets no response)."""

    reason = Reason.CANCELLED
    jsonrpc_code = -32800


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpAnswer:
    """An HTTP error response, ready for any ASGI sender: status, JSON body, extra headers."""

    status: int
    """The error's `http_status`, unless the caller's protocol fixes another (401 for a challenge)."""
    body: bytes
    """`application/json`: the JSON-RPC error response, or the RFC 6750 form outside MCP."""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    """Extra response headers (`WWW-Authenticate`...)."""


def http_error(
    exc: BaseException | Refusal,
    *,
    request_id: Any = None,
    status: int | None = None,
    problem: tuple[str, str] | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> HttpAnswer:
    """The one place an error becomes an HTTP response.

    Args:
        exc: Any exception (a foreign one becomes a generic `InternalError`) or a `Reject`.
        request_id: For the JSON-RPC body: the id of the request being refused (None: unknown).
        status: Overrides the error's own `http_status` (a transport's table says otherwise).
        problem: `(error, error_description)` for endpoints outside MCP (authentication challenges, the admin
            API), answered in the RFC 6750 form instead of JSON-RPC (an empty description is left out).
        headers: Extra response headers.
    """
    failure = error_from_exception(exc)
    if problem is not None:
        error, description = problem
        body = orjson.dumps(
            {"error": error, "error_description": description} if description else {"error": error}
        )
    else:
        body = orjson.dumps(error_response(request_id, failure))
    return HttpAnswer(status=status or failure.http_status, body=body, headers=tuple(headers))
