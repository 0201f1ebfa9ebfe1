"""`AuditEvent`: one audit record, built from a finished `Exchange` or from a `Notice`, and its stored form.

Rules:
- Arguments are `exchange.params` as finally forwarded (after every guardrail `Mutate`), never the original.
- Findings are recorded through `Finding.to_dict()`: where and what, never the matched text.
- Results are summarised (size, error code, `isError`) unless `include_results` is on; both are size-capped.
- No header, token, key or environment value is ever read here: a `SessionInfo`/`Principal` carries none.
- The *content* of an event is everything except its chain fields (replica, seq, prev_hash, hash); the chain
  hashes the canonical JSON of the content (see `chain.py`), so the content is what is stored verbatim.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from bastion.pipeline.exchange import Exchange
from bastion.pipeline.notice import Notice

EXCHANGE_KIND: Final = "exchange"
"""`kind` of a request/response event; notices use their `NoticeKind` value."""
CHAIN_FIELDS: Final = frozenset({"replica", "seq", "prev_hash", "hash"})
"""Fields set by the sink when it links the event into its chain; not part of the hashed content."""
_PARAM_KEYS_NOT_ARGUMENTS: Final = frozenset({"name", "uri", "_meta", "cursor"})
"""Params that are routing or transport metadata, recorded elsewhere (target) or not at all (_meta)."""


def canonical(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 (orjson's float and string forms are deterministic)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEvent:
    """One audit record: a request/response pair (`kind="exchange"`) or a notable event (a notice kind)."""

    event_id: str
    """Unique id (the exchange or notice id)."""
    kind: str
    """`exchange`, or a `NoticeKind` value such as `session_start`, `auth_failure`, `upstream_state`."""
    time: float
    """Wall-clock time the request arrived, or the notice happened (epoch seconds)."""
    replica: str = ""
    """The replica whose chain holds the event (set by the sink)."""
    seq: int = 0
    """Position in that chain, from 1 (set by the sink)."""
    prev_hash: str = ""
    """Hash of the previous event of the chain, or of the prune anchor (set by the sink)."""
    hash: str = ""
    """sha256 over replica, seq, prev_hash and the canonical content (set by the sink)."""
    session_id: str = ""
    principal: str = ""
    roles: tuple[str, ...] = ()
    auth_method: str = ""
    """How the principal authenticated: `api_key`, `jwt`, `local`, `none`."""
    key_id: str = ""
    """Public id of the API key or token (`jti`/`kid`) used, never the secret: which credential to revoke."""
    issuer: str = ""
    """The presented JWT's `iss` (empty for API keys): with `subject`, whose token it was."""
    subject: str = ""
    """The presented JWT's `sub`."""
    token_digest: str = ""
    """`token_digest()` of the presented JWT: which exact token was used, never the token itself."""
    client_name: str = ""
    """Self-reported, informative only."""
    client_version: str = ""
    transport: str = ""
    remote: str = ""
    """Client address, when known."""
    server: str = ""
    """Upstream server name."""
    method: str = ""
    """JSON-RPC method of an exchange."""
    target: str = ""
    """Upstream-local tool or prompt name, or resource URI; the name as asked when routing failed."""
    request_id: str = ""
    """The client's JSON-RPC id, as text."""
    arguments: Any = None
    """Arguments as forwarded (after redaction), or a truncation marker object when over the cap."""
    arguments_bytes: int = 0
    """Size of the forwarded arguments' JSON, before any truncation."""
    arguments_truncated: bool = False
    result: Any = None
    """The (capped) result, only when `include_results` is on."""
    result_bytes: int = 0
    """Size of the result's JSON as returned to the client."""
    is_error: bool = False
    """The tool result's `isError`."""
    error_code: int | None = None
    """JSON-RPC error code when the call failed or was refused."""
    error_reason: str = ""
    """`error.data.reason` (a small `Reason` value) when present."""
    outcome: str = ""
    """Exchanges: `allow`, `deny`, `error`, `flag`, `redact`, `cancelled`. Notices: their severity."""
    rule: str = ""
    """The policy rule that decided, when one did."""
    decisions: tuple[dict[str, Any], ...] = ()
    """Every stage verdict: stage, phase, outcome, explanation, findings (as `Finding.to_dict()`)."""
    severity: str = "info"
    detail: dict[str, Any] = field(default_factory=dict)
    """A notice's non-secret facts."""
    latency_ms: float = 0.0
    """Arrival to observation."""
    upstream_ms: float = 0.0
    """Waiting on the upstream."""
    gateway_ms: float = 0.0
    """`latency_ms - upstream_ms`: Bastion's own share."""
    trace_id: str = ""

    def content(self) -> dict[str, Any]:
        """The hashed, stored part: every field but the chain fields."""
        out = {name: getattr(self, name) for name in _CONTENT_FIELDS}
        out["roles"] = list(self.roles)
        out["decisions"] = list(self.decisions)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The whole event as JSON-able data (CLI, export, admin API)."""
        return {
            "replica": self.replica,
            "seq": self.seq,
            **self.content(),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


_FIELD_NAMES: Final = frozenset(f.name for f in dataclasses.fields(AuditEvent))
_CONTENT_FIELDS: Final = tuple(f.name for f in dataclasses.fields(AuditEvent) if f.name not in CHAIN_FIELDS)
_DEFAULT_CONTENT: Final = AuditEvent(event_id="", kind="", time=0.0).content()
"""Every content key with its default, so a content dict built directly has exactly the event's keys."""


def event_from_content(
    content: dict[str, Any], *, replica: str, seq: int, prev_hash: str, hash: str
) -> AuditEvent:
    """Rebuild an event from its stored content (unknown keys from newer versions are ignored)."""
    known = {k: v for k, v in content.items() if k in _FIELD_NAMES and k not in CHAIN_FIELDS}
    known["roles"] = tuple(known.get("roles") or ())
    known["decisions"] = tuple(known.get("decisions") or ())
    known.setdefault("event_id", "")
    known.setdefault("kind", "")
    known.setdefault("time", 0.0)
    return AuditEvent(replica=replica, seq=seq, prev_hash=prev_hash, hash=hash, **known)


def _capped(value: Any, limit: int) -> tuple[Any, int, bool]:
    """(value or truncation marker, JSON size, truncated?)."""
    if value is None:
        return None, 0, False
    try:
        raw = canonical(value)
    except TypeError:  # not JSON (an int over 64 bits): say so rather than fail the record
        return {"_unserializable": True}, 0, True
    if len(raw) <= limit:
        return value, len(raw), False
    preview = raw[:limit].decode("utf-8", errors="ignore")
    return {"_truncated": True, "_bytes": len(raw), "_preview": preview}, len(raw), True


def _size(value: Any) -> int:
    """The JSON size of a value that is not recorded: key order does not change it, so no canonical sort (a
    64 KB result costs a plain orjson pass instead of a sorted one)."""
    try:
        return len(orjson.dumps(value))
    except TypeError:
        return 0


def _arguments(method: str, params: dict[str, Any]) -> Any:
    args = params.get("arguments")
    if method in ("tools/call", "prompts/get"):
        return args if isinstance(args, dict) else None
    rest = {k: v for k, v in params.items() if k not in _PARAM_KEYS_NOT_ARGUMENTS}
    return rest or None


def _requested(params: dict[str, Any]) -> str:
    """The name or URI a request asked for, when routing never resolved it (a probe of an unknown name)."""
    ref = params.get("ref")
    for value in (params.get("name"), params.get("uri"), ref.get("name") if isinstance(ref, dict) else None):
        if isinstance(value, str):
            return value
    return ""


def _claim(claims: dict[str, Any], name: str) -> str:
    value = claims.get(name)
    return value if isinstance(value, str) else ""


def _decision(decision: Any) -> dict[str, Any]:
    return {
        "stage": decision.stage,
        "phase": decision.phase,
        "outcome": decision.outcome,
        "explanation": decision.explanation,
        "findings": [f.to_dict() for f in decision.findings],
    }


def exchange_content(
    exchange: Exchange,
    *,
    max_argument_bytes: int,
    include_results: bool = False,
    max_result_bytes: int = 4096,
    now: float | None = None,
) -> dict[str, Any]:
    """The content of a finished exchange's event, built directly (the recorder's hot path skips the object)."""
    elapsed = max(0.0, time.perf_counter() - exchange.started)
    info = exchange.session
    arguments, arguments_bytes, truncated = _capped(
        _arguments(exchange.method, exchange.params), max_argument_bytes
    )
    result = exchange.result
    result_bytes = 0
    recorded_result: Any = None
    if result is not None and include_results:
        recorded_result, result_bytes, _ = _capped(result, max_result_bytes)
    elif result is not None:
        result_bytes = _size(result)
    error = exchange.error or {}
    data = error.get("data")
    policy = exchange.annotations.get("authorize")
    upstream = exchange.upstream_seconds
    return {
        **_DEFAULT_CONTENT,
        "event_id": exchange.exchange_id,
        "kind": EXCHANGE_KIND,
        "time": (now if now is not None else time.time()) - elapsed,
        "session_id": info.session_id,
        "principal": info.principal.name,
        "roles": sorted(info.principal.roles),
        "auth_method": info.principal.method,
        "key_id": info.principal.key_id,
        "issuer": _claim(info.principal.claims, "iss"),
        "subject": _claim(info.principal.claims, "sub"),
        "token_digest": info.principal.token_digest,
        "client_name": info.client_name,
        "client_version": info.client_version,
        "transport": info.transport,
        "remote": info.remote,
        "server": exchange.server or "",
        "method": exchange.method,
        "target": exchange.target or _requested(exchange.params),
        "request_id": "" if exchange.request_id is None else str(exchange.request_id),
        "arguments": arguments,
        "arguments_bytes": arguments_bytes,
        "arguments_truncated": truncated,
        "result": recorded_result,
        "result_bytes": result_bytes,
        "is_error": bool(result.get("isError")) if isinstance(result, dict) else False,
        "error_code": error.get("code") if isinstance(error.get("code"), int) else None,
        "error_reason": str(data.get("reason", "")) if isinstance(data, dict) else "",
        "outcome": exchange.outcome,
        "rule": str(policy.get("rule") or "") if isinstance(policy, dict) else "",
        "decisions": [_decision(d) for d in exchange.decisions],
        "detail": {},
        "latency_ms": round(elapsed * 1000, 3),
        "upstream_ms": round(upstream * 1000, 3),
        "gateway_ms": round(max(0.0, elapsed - upstream) * 1000, 3),
        "trace_id": exchange.trace_id,
    }


def event_from_exchange(
    exchange: Exchange,
    *,
    max_argument_bytes: int,
    include_results: bool = False,
    max_result_bytes: int = 4096,
    now: float | None = None,
) -> AuditEvent:
    """The audit event of a finished exchange, not yet linked into a chain."""
    content = exchange_content(
        exchange,
        max_argument_bytes=max_argument_bytes,
        include_results=include_results,
        max_result_bytes=max_result_bytes,
        now=now,
    )
    return event_from_content(content, replica="", seq=0, prev_hash="", hash="")


def event_from_notice(notice: Notice) -> AuditEvent:
    """The audit event of a notable event (its `detail` is non-secret by the `Notice` contract)."""
    detail = dict(notice.detail)
    return AuditEvent(
        event_id=notice.notice_id,
        kind=str(notice.kind),
        time=notice.time,
        session_id=notice.session_id,
        principal=notice.principal,
        roles=tuple(notice.roles),
        client_name=str(detail.get("client", "")),
        client_version=str(detail.get("clientVersion", "")),
        transport=notice.transport,
        remote=notice.remote,
        key_id=str(detail.get("keyId", "")),
        server=notice.server,
        target=notice.target,
        outcome=notice.severity,
        severity=notice.severity,
        detail=detail,
    )
