"""The OpenAPI 3.1 document of the admin API, generated from the route table (`api.OPERATIONS`).

Rules:
- Paths and operations come only from `OPERATIONS`, so the document cannot drift from the routes.
- Schemas are written by hand here, one per response or body named by an operation; a test checks that every
  named schema exists and that the whole document is valid.
"""

from __future__ import annotations

from typing import Any, Final

from bastion import __version__
from bastion.web.api import OPERATIONS, Operation

_STR: Final = {"type": "string"}
_NUM: Final = {"type": "number"}
_INT: Final = {"type": "integer"}
_BOOL: Final = {"type": "boolean"}
_STRS: Final = {"type": "array", "items": {"type": "string"}}
_OBJ: Final = {"type": "object"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: tuple[str, ...] = (), **properties: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _list_of(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _ref(name)}


SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "Error": _object(("error",), error=_STR, error_description=_STR),
    "Session": _object(("principal", "roles", "via"), principal=_STR, roles=_STRS, method=_STR,
                       via={"enum": ["session", "bearer"]}, expires={"type": ["number", "null"]}),
    "TaintMark": _object(("kind", "tool", "time"), kind={"enum": ["private", "untrusted"]}, tool=_STR, time=_NUM,
                         findings=_STRS, event=_STR, finding_ids=_STRS, principal=_STR),
    "SessionTaint": _object(("session_id", "enabled", "kinds", "marks"), session_id=_STR, enabled=_BOOL,
                            kinds=_STRS, marks=_list_of("TaintMark"), fingerprints=_INT),
    "Finding": _object(detector=_STR, type=_STR, severity=_STR, confidence=_NUM, path=_STR, action=_STR),
    "Decision": _object(stage=_STR, phase=_STR, outcome=_STR, explanation=_STR, findings=_list_of("Finding")),
    "AuditEvent": {
        **_object(("event_id", "kind", "time"), event_id=_STR, kind=_STR, time=_NUM, replica=_STR, seq=_INT,
                  prev_hash=_STR, hash=_STR, session_id=_STR, principal=_STR, roles=_STRS, auth_method=_STR,
                  server=_STR, method=_STR, target=_STR, arguments={}, outcome=_STR, rule=_STR,
                  error_code={"type": ["integer", "null"]}, error_reason=_STR, decisions=_list_of("Decision"),
                  severity=_STR, detail=_OBJ, latency_ms=_NUM, upstream_ms=_NUM, gateway_ms=_NUM),
        "description": "An audit record: arguments as forwarded (after redaction); findings never hold matched "
        "text; redacted spans read `[REDACTED:<type>]`.",
    },
    "FeedItem": _object(("seq", "id", "kind"), seq=_INT, id=_STR, kind=_STR, time=_NUM, principal=_STR,
                        server=_STR, method=_STR, tool=_STR, outcome=_STR, rule=_STR, error_reason=_STR,
                        severity=_STR, findings=_INT, finding_types=_STRS, latency_ms=_NUM),
    "FeedPage": _object(("items",), items=_list_of("FeedItem")),
    "Upstream": _object(("state",), state=_STR, transport=_STR, protocol=_STR, modern=_BOOL, server=_STR,
                        restarts=_INT, lastError=_STR, inFlight=_INT, isolation=_STR, isolatedConnections=_INT),
    "Health": _object(("ready", "upstreams"), ready=_BOOL, sessions=_INT,
                      upstreams={"type": "object", "additionalProperties": _ref("Upstream")},
                      cluster=_object(replica=_STR, replicas=_INT, sessions=_INT, policy=_STR)),
    "Point": _object(("t",), t=_NUM, calls=_INT, denials=_INT, findings=_INT),
    "Count": _object(("name", "calls"), name=_STR, calls=_INT),
    "Overview": _object(("calls", "denials", "findings", "series"), since=_NUM, calls=_INT, denials=_INT,
                        findings=_INT, series=_list_of("Point"), top_tools=_list_of("Count"),
                        top_principals=_list_of("Count"), alerts={"type": "array", "items": _OBJ},
                        health=_ref("Health"), pending_approvals=_INT),
    "PinView": _object(("server", "tool", "status"), server=_STR, tool=_STR,
                       status={"enum": ["pinned", "changed", "rejected"]}, pinned=_OBJ,
                       pending={"type": ["object", "null"]}, pending_hash=_STR, diff=_STRS, decided_by=_STR),
    "ToolDecisionRequest": _object(pending_hash={"type": "string",
                                   "description": "approve only if this is still the pending definition's hash"}),
    "Tool": _object(("name",), name=_STR, description=_STR, definition=_OBJ,
                    pin={"oneOf": [_ref("PinView"), {"type": "null"}]}),
    "Server": {"allOf": [_ref("Upstream"), _object(("name", "tools"), name=_STR, tools=_list_of("Tool"))]},
    "Servers": _object(("servers",), servers=_list_of("Server")),
    "ToolChanges": _object(("enabled", "changes"), enabled=_BOOL, changes=_list_of("PinView")),
    "ToolDecision": _object(("server", "tool", "decision"), server=_STR, tool=_STR,
                            decision={"enum": ["approved", "rejected"]}),
    "Approval": _object(("id", "question", "principal", "method"), id=_STR, question=_STR, principal=_STR,
                        server={"type": ["string", "null"]}, target={"type": ["string", "null"]}, method=_STR,
                        session=_STR, created=_NUM),
    "Approvals": _object(("pending",), pending=_list_of("Approval")),
    "ApprovalAnswer": _object(("id", "approved"), id=_STR, approved=_BOOL),
    "Policy": _object(("configured", "admin_role"), configured=_BOOL, admin_role=_STR, source=_STR,
                      generation=_INT, enabled=_BOOL, mode=_STR, default=_STR, roles=_OBJ, warnings=_STRS,
                      yaml=_STR),
    "PolicyTest": _object(("principal", "name"), principal=_STR, roles=_STRS,
                          kind={"enum": ["tool", "prompt", "resource"]}, name=_STR, server=_STR,
                          args={"type": "object"}),
    "PolicyDecision": _object(("allowed", "explanation"), allowed=_BOOL, rule=_STR, explanation=_STR,
                              monitor=_BOOL, principal=_STR, roles=_STRS, kind=_STR, server=_STR, name=_STR,
                              canonical=_BOOL, visible=_BOOL),
    "Principal": _object(("name",), name=_STR, policy_roles=_STRS, key_roles=_STRS, active_keys=_INT,
                         admin=_BOOL),
    "Principals": _object(("principals",), principals=_list_of("Principal"), admin_role=_STR),
    "ApiKey": _object(("id", "principal", "roles"), id=_STR, principal=_STR, roles=_STRS, created_at=_NUM,
                      expires_at={"type": ["number", "null"]}, revoked_at={"type": ["number", "null"]}),
    "Keys": _object(("keys",), keys=_list_of("ApiKey")),
    "KeyCreate": _object(("principal",), principal=_STR, roles=_STRS,
                         expires_in={"type": "string", "description": "a duration: 30d, 12h, 15m, 2w"}),
    "KeyCreated": _object(("key", "info"), key={"type": "string", "description": "shown once, never again"},
                          info=_ref("ApiKey")),
    "KeyRevoked": _object(("id", "revoked"), id=_STR, revoked=_BOOL),
    "AuditPage": _object(("source", "durable", "events"), source=_STR, durable=_BOOL,
                         events=_list_of("AuditEvent")),
    "ChainReport": _object(("replica", "ok"), replica=_STR, ok=_BOOL, events=_INT, first_seq=_INT, last_seq=_INT,
                           checkpoints=_INT, problem=_STR, bad_seq={"type": ["integer", "null"]},
                           bad_event_id=_STR, bad_position=_STR, warnings=_STRS),
    "Verification": _object(("available", "ok", "chains"), available=_BOOL, ok=_BOOL,
                            chains=_list_of("ChainReport")),
}  # fmt: skip

_ERRORS: Final = {
    "400": "Invalid input (the message names the field)",
    "401": "No valid credential",
    "403": "Not an admin, or a cross-site request",
    "404": "Unknown id",
}


def _operation(op: Operation) -> dict[str, Any]:
    content: dict[str, Any] = {op.media_type: {"schema": _ref(op.response)} if op.response else {}}
    if op.path == "/audit/export":
        content = {"application/x-ndjson": {}, "text/csv": {}}
    responses: dict[str, Any] = {str(op.status): {"description": op.summary, "content": content}}
    for status, text in _ERRORS.items():
        if status == "404" and "{" not in op.path:
            continue
        responses[status] = {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    }
    if op.params:
        out["parameters"] = [
            {
                "name": p.name,
                "in": p.where,
                "required": p.where == "path",
                "description": p.description or p.name,
                "schema": {"type": p.type},
            }
            for p in op.params
        ]
    if op.body:
        out["requestBody"] = {
            "required": not op.body_optional,
            "content": {"application/json": {"schema": _ref(op.body)}},
        }
    return out


def openapi_document(*, server_url: str = "/api") -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    paths: dict[str, dict[str, Any]] = {
        "/openapi.json": {
            "get": {
                "operationId": "get_openapi",
                "summary": "This document",
                "tags": ["meta"],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
            }
        }
    }
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Bastion admin API",
            "version": __version__,
            "description": "Everything the operator dashboard does, for automation. Every route needs an "
            "admin principal: `Authorization: Bearer <API key or token>` (or `X-API-Key`), or the dashboard "
            "session cookie plus the `X-CSRF-Token` header on state-changing requests.",
        },
        "servers": [{"url": server_url}],
        "security": [{"bearer": []}, {"apiKey": []}, {"session": []}],
        "tags": [{"name": t} for t in dict.fromkeys(op.tag for op in OPERATIONS)],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (bst_...) or a JWT",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "session": {"type": "apiKey", "in": "cookie", "name": "bastion_ui"},
            },
        },
    }
