"""The HTML pages: structure a screen reader relies on, escaping, and the forms that act (post, then redirect)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import anyio
import httpx
import pytest
from mcp.shared.exceptions import MCPError

from bastion.web.render import STATIC, TEMPLATES
from tests.web.harness import GITHUB_TOKEN, ORIGIN, Stack, login, memory_stack

pytestmark = pytest.mark.anyio

PAGES = ("/ui/live", "/ui/overview", "/ui/servers", "/ui/approvals", "/ui/policies", "/ui/audit?verify=1")


class Outline(HTMLParser):
    """What an accessibility check needs from a page: landmarks, headings, form fields and their labels."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.labels: set[str] = set()
        self.fields: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "label" and attributes.get("for"):
            self.labels.add(str(attributes["for"]))
        if tag in ("input", "select", "textarea") and attributes.get("type") != "hidden":
            self.fields.append(attributes)

    def count(self, tag: str, **attrs: str) -> int:
        return sum(1 for t, a in self.tags if t == tag and all(a.get(k) == v for k, v in attrs.items()))


def outline(html: str) -> Outline:
    parser = Outline()
    parser.feed(html)
    return parser


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with memory_stack(tmp_path) as s:
        yield s


@pytest.fixture
async def session(stack: Stack) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with stack.client() as client:
        yield client, await login(client, stack.admin_key)


async def test_every_page_has_landmarks_one_h1_a_skip_link_and_a_label_for_every_field(
    stack: Stack, session: tuple[httpx.AsyncClient, str]
) -> None:
    client, _csrf = session
    async with stack.agent() as agent:
        await agent.call_tool("notes__echo", {"text": GITHUB_TOKEN})
    event_id = stack.dashboard.feed.recent({"tool": "echo"})[0].id
    for page in (*PAGES, f"/ui/events/{event_id}", "/ui/login"):
        response = await client.get(page)
        assert response.status_code == 200, page
        doc = outline(response.text)
        assert doc.count("html", lang="en") == 1
        assert doc.count("main", id="main") == 1 and doc.count("header") == 1 and doc.count("footer") == 1
        assert doc.count("a", href="#main") == 1
        assert doc.count("h1") == 1, page
        if page != "/ui/login":
            assert doc.count("nav", **{"aria-label": "Main"}) == 1
            assert doc.count("a", **{"aria-current": "page"}) == 1
        for field in doc.fields:
            assert field.get("id") in doc.labels, (page, field)
        assert "<script>" not in response.text and " style=" not in response.text  # CSP: no inline code


async def test_names_from_the_outside_are_escaped(
    stack: Stack, session: tuple[httpx.AsyncClient, str]
) -> None:
    client, _csrf = session
    await stack.dashboard.service.keys_store.create("<script>alert(1)</script>", ["agent"])
    page = (await client.get("/ui/policies")).text
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_the_event_page_marks_the_finding_and_shows_the_redaction(
    stack: Stack, session: tuple[httpx.AsyncClient, str]
) -> None:
    client, _csrf = session
    async with stack.agent() as agent:
        await agent.call_tool("notes__echo", {"text": f"use {GITHUB_TOKEN} now"})
    event_id = stack.dashboard.feed.recent({"tool": "echo"})[0].id
    page = (await client.get(f"/ui/events/{event_id}")).text
    assert re.search(
        r'<mark class="finding">"use <span class="redacted"[^>]*>\[REDACTED:github_token\]</span> now"</mark>',
        page,
    )
    assert "github_token" in page and "critical" in page
    assert (await client.get("/ui/events/unknown")).status_code == 404


async def test_denying_a_held_call_on_the_approvals_page(
    stack: Stack, session: tuple[httpx.AsyncClient, str]
) -> None:
    client, csrf = session
    refused: list[bool] = []
    async with stack.agent() as agent, anyio.create_task_group() as tg:

        async def held() -> None:
            try:  # `refusals: result` (the default): a denied call is an `isError` result
                refused.append((await agent.call_tool("calc__echo", {"text": GITHUB_TOKEN})).is_error)
            except MCPError:
                refused.append(True)

        tg.start_soon(held)
        with anyio.fail_after(10):
            while not (pending := await stack.runtime.gateway.approvals.pending()):
                await anyio.sleep(0.02)
        page = (await client.get("/ui/approvals")).text
        assert f'action="/ui/approvals/{pending[0].id}/deny"' in page
        answer = await client.post(
            f"/ui/approvals/{pending[0].id}/deny", data={"csrf_token": csrf}, headers={"origin": ORIGIN}
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/approvals?msg=denied"
    assert refused == [True]
    gone = await client.post(
        f"/ui/approvals/{pending[0].id}/approve", data={"csrf_token": csrf}, headers={"origin": ORIGIN}
    )
    assert gone.headers["location"] == "/ui/approvals?msg=gone"
    assert "no longer pending" in (await client.get(gone.headers["location"])).text


async def test_the_policy_tester_and_key_forms(stack: Stack, session: tuple[httpx.AsyncClient, str]) -> None:
    client, csrf = session
    tested = await client.post(
        "/ui/policies/test",
        data={
            "principal": "bot",
            "roles": "agent",
            "kind": "tool",
            "name": "calc__add",
            "args": '{"a": 1}',
            "csrf_token": csrf,
        },
        headers={"origin": ORIGIN},
    )
    assert (
        tested.status_code == 200
        and "<strong>Allowed</strong>" in tested.text
        and "agent-tools" in tested.text
    )
    invalid = await client.post(
        "/ui/policies/test",
        data={"principal": "bot", "name": "calc__add", "args": "{nope", "csrf_token": csrf},
        headers={"origin": ORIGIN},
    )
    assert invalid.status_code == 400 and "Arguments must be JSON." in invalid.text
    created = await client.post(
        "/ui/keys", data={"principal": "ci", "roles": "agent", "expires_in": "7d", "csrf_token": csrf},
        headers={"origin": ORIGIN},
    )  # fmt: skip
    assert created.status_code == 201 and "shown only this once" in created.text
    key_id = next(k["id"] for k in await stack.dashboard.service.keys() if k["principal"] == "ci")
    listing = (await client.get("/ui/policies")).text
    assert "shown only this once" not in listing and f"/ui/keys/{key_id}/revoke" in listing
    revoked = await client.post(
        f"/ui/keys/{key_id}/revoke", data={"csrf_token": csrf}, headers={"origin": ORIGIN}
    )
    assert revoked.headers["location"] == "/ui/policies?msg=revoked#keys"


async def test_approving_a_changed_tool_definition_on_the_servers_page(
    stack: Stack, session: tuple[httpx.AsyncClient, str]
) -> None:
    client, csrf = session
    async with stack.agent() as agent:
        await agent.list_tools()
        await agent.call_tool("shifty__rug", {})
        with anyio.fail_after(10):
            while "seven-day" not in (page := (await client.get("/ui/servers")).text):
                await agent.list_tools()
        assert '<span class="add">+' in page
        reviewed = re.search(r'name="pending_hash" value="([0-9a-f]{64})"', page)
        assert reviewed is not None
        done = await client.post(
            "/ui/servers/shifty/tools/weather/approve",
            data={"csrf_token": csrf, "pending_hash": reviewed.group(1)},
            headers={"origin": ORIGIN},
        )
        assert done.headers["location"] == "/ui/servers?msg=tool-approved"
        assert "No tool definition is waiting" in (await client.get("/ui/servers")).text


async def test_the_audit_page_searches_and_verifies(
    stack: Stack, session: tuple[httpx.AsyncClient, str]
) -> None:
    client, _csrf = session
    async with stack.agent() as agent:
        await agent.call_tool("calc__add", {"a": 1, "b": 1})
    await stack.runtime.audit.recorder.flush()
    page = (await client.get("/ui/audit?tool=calc__add&window=1h&verify=1")).text
    assert "1 event<" in page and "intact" in page
    assert "/api/audit/export?format=csv&amp;tool=calc__add" in page


def test_every_template_and_asset_ships_in_the_wheel() -> None:
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"web/static/*"' in pyproject and '"web/templates/*"' in pyproject
    assert {p.name for p in STATIC.iterdir()} >= {"app.css", "app.js", "favicon.svg"}
    assert all(p.is_file() for p in TEMPLATES.iterdir())  # the globs are flat: no subfolders
    assert all(p.is_file() for p in STATIC.iterdir())


async def test_static_assets_are_served_without_login(stack: Stack) -> None:
    async with stack.client() as client:
        for name, kind in (
            ("app.js", "javascript"),
            ("app.css", "text/css"),
            ("favicon.svg", "image/svg+xml"),
        ):
            response = await client.get(f"/ui/static/{name}")
            assert response.status_code == 200 and kind in response.headers["content-type"]
