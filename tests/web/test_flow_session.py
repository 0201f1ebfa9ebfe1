"""The dashboard's session view and the admin API show what tainted a client session (never a value)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.web.harness import bearer, login, memory_stack

pytestmark = pytest.mark.anyio


def with_flow(data: dict[str, Any]) -> None:
    data["policy"] = {
        **data["policy"],
        "flow": {
            "enabled": True,
            "labels": [{"servers": ["calc"], "tools": ["echo"], "labels": ["reads_untrusted"]}],
        },
    }


async def test_a_sessions_taint_is_listed_with_its_tool_findings_and_event(tmp_path: Path) -> None:
    async with memory_stack(tmp_path, tweak=with_flow) as stack, stack.agent() as agent:
        await agent.call_tool("calc__add", {"a": 1, "b": 2})
        await agent.call_tool("calc__echo", {"text": "a page with instructions"})
        await agent.call_tool("notes__add", {"a": 1, "b": 1})
        (session_id,) = stack.runtime.gateway.sessions
        async with stack.client() as client:
            api = await client.get(f"/api/sessions/{session_id}/taint", headers=bearer(stack.admin_key))
            assert api.status_code == 200
            taint = api.json()
            assert (taint["enabled"], taint["kinds"]) == (True, ["untrusted"])
            (mark,) = taint["marks"]
            assert (mark["tool"], mark["principal"], mark["findings"]) == ("calc__echo", "agent-1", [])
            await login(client, stack.admin_key)
            page = await client.get(f"/ui/sessions/{session_id}")
            assert page.status_code == 200
            assert "calc__echo" in page.text and f"/ui/events/{mark['event']}" in page.text
            empty = await client.get("/ui/sessions/unknown-session")
            assert empty.status_code == 200 and "Nothing has tainted this session" in empty.text
