"""server-everything reached over Streamable HTTP (not stdio) behind Bastion: the same interop bodies, HTTP upstream.

Downstream transports come from `bastion_client` (tests/interop/conftest.py); Bastion's own Streamable HTTP
listener joins the matrix once `bastion.server.app` exists.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator

import pytest

from tests.interop.test_everything import TOOL_ARGS, text
from tests.peers import calc_stdio
from tests.transports.http_peers import everything_peer, running

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

DOWNSTREAM = ["memory", "stdio"] + (
    ["streamable-http"] if importlib.util.find_spec("bastion.server.app") else []
)
downstream = pytest.mark.parametrize("bastion_client", DOWNSTREAM, indirect=True)


@pytest.fixture
async def config() -> AsyncIterator[dict[str, object]]:
    """Bastion config with server-everything as a Streamable HTTP upstream (a fresh server per test)."""
    async with running(everything_peer("streamableHttp")) as peer:
        everything = {"transport": "streamable-http", "url": peer.url, "connect_timeout_seconds": 20}
        # Guardrails are test_everything's subject; here every downstream variant sees the same pipeline as the
        # in-memory one (a bare Gateway), so a failure points at the HTTP hop.
        yield {"servers": {"everything": everything, "calc": calc_stdio()}, "guardrails": {"enabled": False}}


@downstream
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_every_everything_tool_is_callable_over_an_http_upstream(bastion_client, config, mode):
    async with bastion_client(config, mode=mode) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert "calc__add" in tools
        for name, args in TOOL_ARGS.items():
            assert f"everything__{name}" in tools, name
            result = await client.call_tool(f"everything__{name}", args)
            assert not result.is_error, (name, text(result))


@downstream
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_sampling_and_elicitation_over_an_http_upstream_reach_the_calling_client(
    bastion_client, config, mode
):
    async with bastion_client(config, mode=mode) as client:
        sampled = await client.call_tool(
            "everything__trigger-sampling-request", {"prompt": "hi", "maxTokens": 5}
        )
        assert "stub answer" in text(sampled)
        elicited = await client.call_tool("everything__trigger-elicitation-request", {})
        assert not elicited.is_error and "✅" in text(elicited)


@downstream
async def test_progress_and_prompts_and_resources_over_an_http_upstream(bastion_client, config):
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with bastion_client(config, mode="legacy") as client:
        result = await client.call_tool(
            "everything__trigger-long-running-operation",
            {"duration": 1, "steps": 3},
            progress_callback=on_progress,
        )
        assert not result.is_error and seen == [1, 2, 3]
        assert (await client.get_prompt("everything__args-prompt", {"city": "Paris"})).messages
        assert (await client.read_resource("demo://resource/dynamic/text/3")).contents
