"""End to end in a real browser: a Bastion under uvicorn with stdio upstreams, an agent over Streamable HTTP, and
Debian's Chromium driven by Playwright (never `playwright install`).

Set `BASTION_SCREENSHOTS=docs/screenshots` (or run `scripts/dashboard-screenshots.sh`) to save a screenshot of each
page as it is visited.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from bastion.app.http import build_http_app
from bastion.app.runtime import Runtime, build_runtime
from bastion.config.loader import parse_config
from tests.peers import calc_stdio
from tests.web.harness import (
    GITHUB_TOKEN,
    add_guardrails,
    bearer,
    config_data,
    make_keys,
    serve,
    shifty_stdio,
    wait_ready,
)

playwright = pytest.importorskip("playwright.async_api")
from playwright.async_api import Browser, ConsoleMessage, Page, expect  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.anyio]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = os.environ.get("BASTION_SCREENSHOTS", "")
"""Directory to save page screenshots into (unset: no screenshots)."""
TIMEOUT_MS = 15_000


@dataclass
class Live:
    url: str
    runtime: Runtime
    admin_key: str
    agent_key: str
    browser: Browser
    page: Page
    problems: list[str]
    """Console errors (CSP violations included) and uncaught page errors."""

    @contextlib.asynccontextmanager
    async def agent(self) -> AsyncIterator[Client]:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        async with (
            httpx2.AsyncClient(headers=bearer(self.agent_key), timeout=30) as http,
            Client(streamable_http_client(f"{self.url}/mcp", http_client=http), mode="legacy") as client,
        ):
            yield client

    async def shot(self, name: str) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            await self.page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)

    async def login(self) -> None:
        page = self.page
        await page.goto(f"{self.url}/ui/live")
        await expect(page).to_have_url(re.compile(r"/ui/login\?next="))
        await self.shot("login")
        await page.get_by_label("API key or access token").fill(self.admin_key)
        await page.get_by_role("button", name="Log in").click()
        await expect(page).to_have_url(re.compile(r"/ui/live$"))
        await expect(page.locator("#feed-status")).to_have_text("Live: connected.")


async def wait_serving(url: str) -> None:
    """Until the lifespan finished starting the gateway (uvicorn answers only then)."""
    async with httpx.AsyncClient(timeout=120) as http:
        assert (await http.get(f"{url}/healthz")).status_code == 200


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    from playwright.async_api import async_playwright

    # Handshake era: the `server/discover` probe of `auto` and `modern` has a 5-second budget that a stdio
    # server still importing its SDK on a loaded machine can miss; the initialize handshake waits as configured.
    upstreams = {
        "calc": {**calc_stdio(), "protocol": "legacy", "connect_timeout_seconds": 60},
        # Shared: its `rug` tool changes the one process whose list the catalogue shows (with a process per
        # principal it would change only the caller's own; tests/upstream covers that).
        "shifty": {
            **shifty_stdio(),
            "protocol": "legacy",
            "connect_timeout_seconds": 60,
            "isolation": "shared",
        },
    }
    data = config_data(tmp_path, stdio=upstreams)
    # No list cache: over stdio in the handshake era, a list_changed sent while a call is in flight is relayed to
    # that call's client only and does not drop the gateway's cached list (reported to the upstream owner).
    data["routing"] = {"list_cache_seconds": 0}
    runtime = build_runtime(parse_config(data))
    add_guardrails(runtime)
    admin, agent = await make_keys(runtime)
    app = build_http_app(runtime, host="127.0.0.1", port=0)
    async with serve(app) as url, async_playwright() as pw:
        await wait_ready(runtime, ["calc", "shifty"], timeout=90)
        await wait_serving(url)
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 860})
            context.set_default_timeout(TIMEOUT_MS)
            page = await context.new_page()
            problems: list[str] = []

            def console(message: ConsoleMessage) -> None:
                if message.type == "error":
                    problems.append(message.text)

            page.on("console", console)
            page.on("pageerror", lambda error: problems.append(str(error)))
            yield Live(url, runtime, admin, agent, browser, page, problems)
        finally:
            await browser.close()  # first: its open event streams would hold the server's shutdown


async def test_an_admin_logs_in_and_sees_a_live_call_appear_in_the_feed(live: Live) -> None:
    await live.login()
    page = live.page
    async with live.agent() as agent:
        assert (await agent.call_tool("calc__add", {"a": 2, "b": 40})).structured_content == {"result": 42}
        await agent.call_tool("calc__echo", {"text": "hello"})
    row = page.locator("#feed-rows tr", has_text="add").first
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("agent-1")
    await expect(row).to_contain_text("allow")
    await live.shot("live")
    await row.get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Call tools/call add")
    await expect(page.locator("pre.json")).to_contain_text('"a": 2')
    assert live.problems == []


async def test_filtering_the_feed_by_decision_shows_only_matching_live_calls(live: Live) -> None:
    await live.login()
    page = live.page
    await page.get_by_label("Decision").select_option("redact")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#feed-status")).to_have_text("Live: connected.")
    async with live.agent() as agent:
        await agent.call_tool("calc__add", {"a": 1, "b": 1})
        await agent.call_tool("shifty__weather", {"city": f"Paris {GITHUB_TOKEN}"})
    row = page.locator("#feed-rows tr").first
    await expect(row).to_contain_text("weather")
    await expect(row).to_contain_text("secrets.github_token")
    await expect(page.locator("#feed-rows tr")).to_have_count(1)
    await row.get_by_role("link").click()
    await expect(page.locator("pre.json .redacted")).to_have_text("[REDACTED:github_token]")
    await live.shot("event")
    assert live.problems == []


async def test_an_admin_approves_a_changed_tool_definition(live: Live) -> None:
    await live.login()
    page = live.page
    async with live.agent() as agent:
        assert "shifty__weather" in {t.name for t in (await agent.list_tools()).tools}
        await agent.call_tool("shifty__rug", {})
        with anyio.fail_after(15):
            while "shifty__weather" in {t.name for t in (await agent.list_tools()).tools}:
                await anyio.sleep(0.1)  # the list is re-fetched after the upstream's list_changed
        await page.goto(f"{live.url}/ui/servers")
        change = page.locator("article.change", has_text="shifty__weather")
        await expect(change.locator("pre.diff .add")).to_contain_text("seven-day forecast")
        await expect(change.locator("pre.diff .del")).to_contain_text("Current weather for a city.")
        await live.shot("servers")
        await change.get_by_role("button", name="Approve weather").click()
        await expect(page.get_by_role("status")).to_have_text("The new tool definition is now the pin.")
        with anyio.fail_after(15):
            while "shifty__weather" not in {t.name for t in (await agent.list_tools()).tools}:
                await anyio.sleep(0.1)
        assert (await agent.call_tool("shifty__weather", {"city": "Oslo"})).content[0].text == "sunny in Oslo"  # type: ignore[union-attr]
    assert live.problems == []


async def test_an_admin_denies_a_call_waiting_for_approval_as_it_arrives(live: Live) -> None:
    await live.login()
    page = live.page
    await page.goto(f"{live.url}/ui/approvals")
    await expect(page.locator("#no-approvals")).to_be_visible()
    outcomes: list[Any] = []
    async with live.agent() as agent, anyio.create_task_group() as tg:

        async def held_call() -> None:
            try:
                outcomes.append(await agent.call_tool("calc__echo", {"text": f"deploy with {GITHUB_TOKEN}"}))
            except MCPError as exc:
                outcomes.append(exc)

        tg.start_soon(held_call)
        deny = page.get_by_role("button", name="Deny echo for agent-1")
        await expect(deny).to_be_visible()  # the page updated itself from the live stream
        await live.shot("approvals")
        await deny.click()
        await expect(page.get_by_role("status")).to_have_text("The call was denied.")
    # `refusals: result` (the default): the denied call comes back as an `isError` result the model can read.
    assert [getattr(o, "meta", None) for o in outcomes] == [
        {"dev.bastion/refusal": {"by": "guardrail", "approval": "denied"}}
    ]
    assert live.problems == []


async def test_an_admin_searches_the_audit_trail_and_verifies_the_chain(live: Live) -> None:
    await live.login()
    page = live.page
    async with live.agent() as agent:
        for n in range(3):
            await agent.call_tool("calc__add", {"a": n, "b": 1})
        await agent.call_tool("calc__echo", {"text": "not this one"})
    await page.goto(f"{live.url}/ui/audit")
    await page.get_by_label("Tool").fill("calc__add")
    await page.get_by_label("Period").select_option("1h")
    await page.get_by_role("button", name="Search").click()
    results = page.locator("#audit-results tbody tr")
    await expect(results).to_have_count(3)
    await expect(page.locator("#audit-results caption")).to_have_text("3 events")
    await page.get_by_role("button", name="Verify the audit chain").click()
    await expect(page.locator("#verify-result")).to_contain_text("intact")
    await live.shot("audit")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="JSON Lines").click()
    download = await download_info.value
    assert download.suggested_filename == "bastion-audit.jsonl"
    assert live.problems == []


async def test_the_overview_and_policies_pages_render_in_the_browser(live: Live) -> None:
    await live.login()
    page = live.page
    async with live.agent() as agent:
        await agent.call_tool("calc__add", {"a": 1, "b": 2})
        await agent.call_tool("shifty__weather", {"city": GITHUB_TOKEN})
    await page.get_by_role("link", name="Overview").click()
    await expect(page.locator("svg.chart").first).to_be_visible()
    await expect(page.locator(".totals")).to_contain_text("calls")
    await live.shot("overview")
    await page.get_by_role("link", name="Policies and principals").click()
    await page.get_by_label("Principal", exact=True).first.fill("ci-bot")
    await page.get_by_label("Roles it brings").fill("agent")
    await page.get_by_label("Name (server__tool, or a resource URI)").fill("calc__add")
    await page.get_by_role("button", name="Test").click()
    await expect(page.locator("#test-result")).to_contain_text("Allowed")
    await live.shot("policies")
    assert live.problems == []
