"""The OpenAPI document: well-formed 3.1, complete (every route, every parameter), and true (answers match it)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bastion.web.api import OPERATIONS, api_routes
from bastion.web.openapi import SCHEMAS, openapi_document
from tests.web.harness import GITHUB_TOKEN, bearer, memory_stack

pytestmark = pytest.mark.anyio

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def test_the_document_is_openapi_3_1_with_unique_operation_ids_and_resolvable_refs() -> None:
    doc = openapi_document()
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] and doc["info"]["version"]
    ids = [op["operationId"] for item in doc["paths"].values() for m, op in item.items() if m in METHODS]
    assert len(ids) == len(set(ids))
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"], ref
    for name, schema in SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema), name
    declared = set(doc["components"]["securitySchemes"])
    assert all(set(requirement) <= declared for requirement in doc["security"])


def test_every_path_parameter_is_declared_required_and_every_operation_has_responses() -> None:
    doc = openapi_document()
    for path, item in doc["paths"].items():
        templated = set(re.findall(r"\{(\w+)\}", path))
        for method, op in item.items():
            assert method in METHODS
            assert op["responses"] and all(code.isdigit() for code in op["responses"])
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == templated, (method, path)
            assert all(p["required"] for p in op.get("parameters", []) if p["in"] == "path")
            assert all(p["in"] in ("query", "path", "header", "cookie") for p in op.get("parameters", []))


def test_the_document_lists_exactly_the_routes_that_are_served() -> None:
    served = {
        (method, route.path)  # type: ignore[attr-defined]
        for route in api_routes(None, openapi_document)  # type: ignore[arg-type]
        for method in route.methods  # type: ignore[attr-defined]
        if method != "HEAD"
    }
    documented = {
        (method.upper(), path) for path, item in openapi_document()["paths"].items() for method in item
    }
    assert served == documented
    assert len(OPERATIONS) + 1 == len(documented)


async def test_real_answers_match_their_documented_schemas(tmp_path: Path) -> None:
    doc = openapi_document()
    async with memory_stack(tmp_path) as stack, stack.client(headers=bearer(stack.admin_key)) as client:
        async with stack.agent() as agent:
            await agent.call_tool("notes__echo", {"text": GITHUB_TOKEN})
        await stack.runtime.audit.recorder.flush()
        assert (await client.get("/api/openapi.json")).json() == doc
        event_id = (await client.get("/api/feed")).json()["items"][0]["id"]
        key = (await client.post("/api/keys", json={"principal": "ci"})).json()
        answers: dict[tuple[str, str], Any] = {
            ("GET", "/events/{event_id}"): await client.get(f"/api/events/{event_id}"),
            ("GET", "/sessions/{session_id}/taint"): await client.get("/api/sessions/any-session/taint"),
            ("POST", "/keys"): key,
            ("POST", "/policy/test"): await client.post(
                "/api/policy/test", json={"principal": "p", "name": "calc__add"}
            ),
            ("POST", "/keys/{key_id}/revoke"): await client.post(f"/api/keys/{key['info']['id']}/revoke"),
        }
        for op in OPERATIONS:
            if op.method == "GET" and "{" not in op.path and op.response:
                answers[(op.method, op.path)] = await client.get("/api" + op.path)
        for op in OPERATIONS:
            if (op.method, op.path) not in answers or not op.response:
                continue
            answer = answers[(op.method, op.path)]
            body = answer if isinstance(answer, dict) else answer.json()
            schema = {"$ref": f"#/components/schemas/{op.response}", "components": doc["components"]}
            jsonschema.validate(body, schema, cls=jsonschema.Draft202012Validator)
        missing = {op.path for op in OPERATIONS if op.response and (op.method, op.path) not in answers}
        assert missing <= {
            "/tool-changes/{server}/{tool}/approve",
            "/tool-changes/{server}/{tool}/reject",
            "/approvals/{approval_id}/approve",
            "/approvals/{approval_id}/deny",
        }
