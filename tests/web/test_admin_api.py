"""The admin API over the real ASGI app: who gets in, CSRF, secrets never leaving, and what each route does."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from bastion.audit.sinks import AuditQuery
from bastion.auth.apikeys import ApiKeyStore
from bastion.web.api import OPERATIONS
from bastion.web.sessions import COOKIE_NAME
from tests.web.harness import (
    GITHUB_TOKEN,
    ORIGIN,
    Stack,
    bearer,
    login,
    memory_stack,
)

pytestmark = pytest.mark.anyio

PATH_VALUES = {
    "event_id": "x",
    "server": "shifty",
    "tool": "weather",
    "approval_id": "x",
    "key_id": "x",
    "session_id": "x",
}
PAGES = ("/ui/", "/ui/live", "/ui/overview", "/ui/servers", "/ui/approvals", "/ui/policies", "/ui/audit")


def concrete(path: str) -> str:
    return "/api" + re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with memory_stack(tmp_path) as s:
        yield s


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with stack.client() as c:
        yield c


async def test_every_api_route_refuses_anonymous_callers_with_401_and_a_bearer_challenge(
    client: httpx.AsyncClient,
) -> None:
    for op in [*OPERATIONS, None]:
        method, path = ("GET", "/api/openapi.json") if op is None else (op.method, concrete(op.path))
        response = await client.request(method, path, headers={"origin": ORIGIN})
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_every_page_sends_anonymous_visitors_to_the_login_page(client: httpx.AsyncClient) -> None:
    for page in PAGES:
        response = await client.get(page + "?tool=x")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/ui/login?next=%2Fui%2F")
    assert (await client.get("/ui/login")).status_code == 200


async def test_every_api_route_refuses_a_principal_without_the_admin_role_with_403(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    for op in OPERATIONS:
        response = await client.request(
            op.method, concrete(op.path), headers=bearer(stack.agent_key), json={}
        )
        assert response.status_code == 403, op.path
        assert response.json()["error"] == "forbidden"


async def test_a_non_admin_cannot_log_in_and_gets_no_cookie(stack: Stack, client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/ui/login", data={"credential": stack.agent_key}, headers={"origin": ORIGIN}
    )
    assert response.status_code == 403
    assert COOKIE_NAME not in response.cookies
    bad = await client.post("/ui/login", data={"credential": "bst_nope"}, headers={"origin": ORIGIN})
    assert bad.status_code == 401 and stack.agent_key not in response.text


async def test_the_admin_role_may_come_from_the_policy_in_force(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    key, _ = await stack.dashboard.service.keys_store.create("ops-lead", [])  # admin via policy.principals
    assert (await client.get("/api/session", headers=bearer(key))).json()["principal"] == "ops-lead"


async def test_login_sets_an_httponly_samesite_strict_cookie_and_logout_ends_the_session(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    response = await client.post(
        "/ui/login",
        data={"credential": stack.admin_key, "next": "//evil.example/x"},
        headers={"origin": ORIGIN},
    )
    assert response.status_code == 303 and response.headers["location"] == "/ui/live"  # no open redirect
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    assert stack.admin_key not in response.headers["set-cookie"]
    session = await client.get("/api/session")
    assert session.json() == session.json() | {"principal": "root", "via": "session"}
    page = await client.get("/ui/live")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    out = await client.post("/ui/logout", data={"csrf_token": csrf.group(1)}, headers={"origin": ORIGIN})
    assert out.status_code == 303
    client.cookies.set(COOKIE_NAME, response.cookies[COOKIE_NAME])  # replaying the old cookie
    assert (await client.get("/api/session")).status_code == 401


async def test_a_session_ends_when_the_key_it_logged_in_with_is_revoked(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    key, info = await stack.dashboard.service.keys_store.create("temp-admin", ["admin"])
    await login(client, key)
    assert (await client.get("/api/session")).status_code == 200
    await stack.dashboard.service.keys_store.revoke(info.key_id)
    assert (await client.get("/api/session")).status_code == 401
    assert (await client.get("/ui/live")).status_code == 303


async def test_a_bearer_credential_is_not_accepted_on_the_pages(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    response = await client.get("/ui/live", headers=bearer(stack.admin_key))
    assert response.status_code == 303


async def test_cookie_requests_that_change_state_need_the_csrf_token_and_a_same_origin(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    csrf = await login(client, stack.admin_key)
    path = "/api/keys"
    body = {"principal": "ci", "roles": ["agent"]}
    refused = [
        await client.post(path, json=body, headers={"origin": ORIGIN}),
        await client.post(path, json=body, headers={"origin": ORIGIN, "x-csrf-token": "forged"}),
        await client.post(path, json=body, headers={"origin": "http://evil.example", "x-csrf-token": csrf}),
        await client.post(path, json=body, headers={"origin": "http://127.0.0.1:9999", "x-csrf-token": csrf}),
        await client.post(path, json=body, headers={"x-csrf-token": csrf}),  # neither Origin nor Referer
        await client.post("/ui/keys", data={"principal": "ci"}, headers={"origin": ORIGIN}),
        await client.post(
            "/ui/keys", data={"principal": "ci", "csrf_token": "x"}, headers={"origin": ORIGIN}
        ),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    # A foreign Origin, and a loopback one on another port (a page of another local app: only ui.allowed_origins
    # may call the admin surface cross-origin), are refused by the gateway's origin check; the rest by the gate.
    assert [r.json()["error"] == "csrf" for r in refused] == [True, True, False, False, True, True, True]
    assert "ci" not in {k["principal"] for k in await stack.dashboard.service.keys()}
    ok = await client.post(path, json=body, headers={"origin": ORIGIN, "x-csrf-token": csrf})
    assert ok.status_code == 201
    stack.keys.append(ok.json()["key"])
    form = await client.post(
        "/ui/keys",
        data={"principal": "ci2", "csrf_token": csrf},
        headers={"referer": f"{ORIGIN}/ui/policies"},
    )
    assert form.status_code == 201
    login_elsewhere = await client.post(
        "/ui/login", data={"credential": stack.admin_key}, headers={"origin": "http://evil.example"}
    )
    assert login_elsewhere.status_code == 403


async def test_bearer_requests_need_no_csrf_token(stack: Stack, client: httpx.AsyncClient) -> None:
    response = await client.post("/api/approvals/unknown/deny", headers=bearer(stack.admin_key))
    assert response.status_code == 404 and response.json()["error"] == "not_found"


async def test_pages_and_api_answers_carry_security_headers(stack: Stack, client: httpx.AsyncClient) -> None:
    await login(client, stack.admin_key)
    for response in (await client.get("/ui/live"), await client.get("/api/overview")):
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"


async def test_no_secret_is_ever_rendered_or_returned_and_a_new_key_is_shown_once(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    from tests.web.harness import SECRET_ARG, SECRET_ENV, SECRET_HEADER, SECRET_URL

    csrf = await login(client, stack.admin_key)
    created = await client.post("/api/keys", json={"principal": "ci", "roles": "agent", "expires_in": "30d"},
                                headers={"origin": ORIGIN, "x-csrf-token": csrf})  # fmt: skip
    assert created.status_code == 201 and created.json()["key"].startswith("bst_")
    stack.keys.append(created.json()["key"])
    form = await client.post("/ui/keys", data={"principal": "ci-form", "roles": "agent", "csrf_token": csrf},
                             headers={"origin": ORIGIN})  # fmt: skip
    shown = re.search(r'id="new-key-value" readonly value="(bst_[^"]+)"', form.text)
    assert shown is not None
    stack.keys.append(shown.group(1))
    async with stack.agent() as agent:
        await agent.call_tool("calc__add", {"a": 1, "b": 2})
        await agent.call_tool("notes__echo", {"text": f"token {GITHUB_TOKEN}"})
    bodies: list[str] = []
    for op in OPERATIONS:
        if op.method == "GET" and op.media_type != "text/event-stream":
            bodies.append((await client.get(concrete(op.path))).text)
    bodies.append((await client.get("/api/audit/export?format=csv")).text)
    for page in PAGES:
        bodies.append((await client.get(page, follow_redirects=True)).text)
    for item in (await client.get("/api/feed")).json()["items"]:
        bodies.append((await client.get(f"/api/events/{item['id']}")).text)
        bodies.append((await client.get(f"/ui/events/{item['id']}")).text)
    forbidden = [SECRET_ENV, SECRET_ARG, SECRET_HEADER, SECRET_URL, GITHUB_TOKEN, *stack.keys]
    # Not even the secret half alone (`bst_<id>_<secret>`; the secret itself may contain "_").
    forbidden += [k.split("_", 2)[2] for k in stack.keys]
    for body in bodies:
        for secret in forbidden:
            assert secret not in body


async def test_a_call_shows_in_the_feed_and_its_event_has_findings_and_the_redaction(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    async with stack.agent() as agent:
        await agent.call_tool("notes__echo", {"text": f"token {GITHUB_TOKEN}"})
    items = (await client.get("/api/feed?tool=echo&outcome=redact", headers=bearer(stack.admin_key))).json()
    [item] = items["items"]
    assert item["principal"] == "agent-1" and item["finding_types"] == ["secrets.github_token"]
    event = (await client.get(f"/api/events/{item['id']}", headers=bearer(stack.admin_key))).json()
    assert event["arguments"] == {"text": "token [REDACTED:github_token]"}
    await login(client, stack.admin_key)
    page = (await client.get(f"/ui/events/{item['id']}")).text
    assert '<span class="redacted" title="removed by a guardrail">[REDACTED:github_token]</span>' in page
    assert '<mark class="finding">' in page


@pytest.mark.parametrize("decision", ["approve", "deny"])
async def test_a_held_call_waits_for_a_human_and_resumes_or_fails_as_answered_through_the_api(
    stack: Stack, client: httpx.AsyncClient, decision: str
) -> None:
    auth = bearer(stack.admin_key)
    results: list[Any] = []
    answered: list[dict[str, Any]] = []
    with anyio.fail_after(20):
        async with stack.agent() as agent, anyio.create_task_group() as tg:

            async def held_call() -> None:
                try:
                    results.append(
                        await agent.call_tool("calc__echo", {"text": f"deploy with {GITHUB_TOKEN}"})
                    )
                except MCPError as exc:
                    results.append(exc)

            tg.start_soon(held_call)
            # `ask` applies both ways here: the arguments, then the echoed result, each wait for a human.
            while not results:
                for approval in (await client.get("/api/approvals", headers=auth)).json()["pending"]:
                    answer = await client.post(f"/api/approvals/{approval['id']}/{decision}", headers=auth)
                    assert answer.json() == {"id": approval["id"], "approved": decision == "approve"}
                    answered.append(approval)
                await anyio.sleep(0.02)
    assert [a["principal"] for a in answered] == ["agent-1"] * (2 if decision == "approve" else 1)
    approval = answered[-1]
    assert approval["target"] == "echo"
    [outcome] = results
    if decision == "approve":
        assert outcome.content[0].text == f"deploy with {GITHUB_TOKEN}"  # approved as sent: `ask`, not redact
    else:
        # `refusals: result` (the default): the refusal is an `isError` result the model can read.
        assert outcome.is_error and outcome.meta == {
            "dev.bastion/refusal": {"by": "guardrail", "approval": "denied"}
        }
    again = await client.post(f"/api/approvals/{approval['id']}/approve", headers=auth)
    assert again.status_code == 404  # the first answer wins
    notices = (await client.get("/api/feed?kind=approval", headers=auth)).json()["items"]
    assert notices and notices[0]["principal"] == "agent-1"
    event = (await client.get(f"/api/events/{notices[0]['id']}", headers=auth)).json()
    assert event["detail"] == {"approval": approval["id"], "approved": decision == "approve", "by": "root"}


async def test_a_rug_pulled_tool_is_held_until_approved_through_the_api(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    auth = bearer(stack.admin_key)
    async with stack.agent() as agent:
        assert "shifty__weather" in {t.name for t in (await agent.list_tools()).tools}
        await agent.call_tool("shifty__rug", {})
        with anyio.fail_after(10):
            while not (changes := (await client.get("/api/tool-changes", headers=auth)).json()["changes"]):
                await agent.list_tools()
                await anyio.sleep(0.02)
        [change] = changes
        assert change["tool"] == "weather" and change["status"] == "changed"
        assert any(line.startswith("+") and "seven-day" in line for line in change["diff"])
        assert "shifty__weather" not in {t.name for t in (await agent.list_tools()).tools}
        stale = await client.post(
            "/api/tool-changes/shifty/weather/approve", json={"pending_hash": "0" * 64}, headers=auth
        )
        assert stale.status_code == 404  # an approval is bound to the definition that was reviewed
        done = await client.post("/api/tool-changes/shifty/weather/approve",
                                 json={"pending_hash": change["pending_hash"]}, headers=auth)  # fmt: skip
        assert done.json()["decision"] == "approved"
        with anyio.fail_after(10):
            while "shifty__weather" not in {t.name for t in (await agent.list_tools()).tools}:
                await anyio.sleep(0.05)
    servers = {s["name"]: s for s in (await client.get("/api/servers", headers=auth)).json()["servers"]}
    weather = next(t for t in servers["shifty"]["tools"] if t["name"] == "weather")
    assert weather["pin"]["status"] == "pinned" and weather["pin"]["decided_by"] == "root"
    assert servers["vault"]["state"] == "down" and "env" not in servers["vault"]


async def test_the_audit_search_export_and_chain_verification(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    auth = bearer(stack.admin_key)
    async with stack.agent() as agent:
        await agent.call_tool("calc__add", {"a": 20, "b": 22})
    recorder = stack.runtime.audit.recorder
    await recorder.flush()
    found = (await client.get("/api/audit?tool=calc__add&principal=agent-1", headers=auth)).json()
    assert found["durable"] and [e["target"] for e in found["events"]] == ["add"]
    assert found["events"][0]["hash"] and found["events"][0]["arguments"] == {"a": 20, "b": 22}
    jsonl = await client.get("/api/audit/export?tool=calc__add", headers=auth)
    assert jsonl.headers["content-type"] == "application/x-ndjson" and jsonl.text.count("\n") == 1
    csv = await client.get("/api/audit/export?format=csv&tool=calc__add", headers=auth)
    assert csv.text.splitlines()[0].startswith("time,event_id,kind,principal")
    verified = (await client.get("/api/audit/verify", headers=auth)).json()
    assert verified["available"] and verified["ok"] and verified["chains"][0]["events"] >= 1
    bad = await client.get("/api/audit?limit=zero", headers=auth)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"


async def test_the_policy_tester_gives_the_engines_decision(stack: Stack, client: httpx.AsyncClient) -> None:
    auth = bearer(stack.admin_key)

    async def decide(body: dict[str, Any]) -> httpx.Response:
        return await client.post("/api/policy/test", json=body, headers=auth)

    allowed = (await decide({"principal": "x", "roles": ["agent"], "name": "calc__add"})).json()
    assert allowed["allowed"] and allowed["rule"] == "agent-tools" and allowed["visible"]
    denied = (await decide({"principal": "x", "roles": [], "name": "calc__add"})).json()
    assert not denied["allowed"] and denied["explanation"] == "no rule matched; default deny"
    assert (await decide({"principal": "x", "name": "add"})).status_code == 400
    assert (await decide({"principal": "x", "name": "calc__add", "args": [1]})).status_code == 400
    policy = (await client.get("/api/policy", headers=auth)).json()
    assert policy["configured"] and "agent-tools" in policy["yaml"]
    principals = {
        p["name"]: p for p in (await client.get("/api/principals", headers=auth)).json()["principals"]
    }
    assert (
        principals["ops-lead"]["admin"] and principals["root"]["admin"] and not principals["agent-1"]["admin"]
    )


async def test_keys_are_listed_without_secrets_and_revoked_by_id(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    auth = bearer(stack.admin_key)
    created = (
        await client.post("/api/keys", json={"principal": "ci", "roles": ["agent"]}, headers=auth)
    ).json()
    stack.keys.append(created["key"])
    listed = (await client.get("/api/keys", headers=auth)).json()["keys"]
    assert {"id", "principal", "roles", "created_at", "expires_at", "revoked_at"} == set(listed[0])
    revoked = await client.post(f"/api/keys/{created['info']['id']}/revoke", headers=auth)
    assert revoked.json() == {"id": created["info"]["id"], "revoked": True}
    assert (await client.get("/api/session", headers=bearer(created["key"]))).status_code == 401
    assert (await client.post("/api/keys", json={"principal": ""}, headers=auth)).status_code == 400
    assert (
        await client.post("/api/keys", json={"principal": "a", "expires_in": "soon"}, headers=auth)
    ).status_code == 400


async def test_an_expired_admin_key_on_the_api_is_one_expiry_event_and_refusals_naming_the_key(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    keys = ApiKeyStore(stack.runtime.store, clock=lambda: time.time() - 3600)
    expired, info = await keys.create("old-admin", ["admin"], expires_in=60)
    for _ in range(2):
        assert (await client.get("/api/session", headers=bearer(expired))).status_code == 401
    reader = stack.runtime.audit.recorder.reader

    async def of_key(kind: str) -> list[Any]:
        return [e for e in await reader.search(AuditQuery(kind=kind)) if e.key_id == info.key_id]

    with anyio.fail_after(10):
        while len(await of_key("auth_failure")) < 2 or not await of_key("api_key"):
            await anyio.sleep(0.01)  # polling the trail for the condition itself, bounded above
    (expiry,) = await of_key("api_key")
    assert (expiry.detail["action"], expiry.principal) == ("expired", "old-admin")
