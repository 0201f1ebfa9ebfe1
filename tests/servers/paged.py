"""A low-level SDK server that pages its tool list two at a time (to prove Bastion fetches every page)."""

from __future__ import annotations

from typing import Any

from mcp import types
from mcp.server import Server

TOOL_NAMES = [f"t{i}" for i in range(7)]


def build() -> Server[Any]:
    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        start = int(params.cursor) if params and params.cursor else 0
        page = TOOL_NAMES[start : start + 2]
        tools = [types.Tool(name=n, description=f"tool {n}", input_schema={"type": "object"}) for n in page]
        next_cursor = str(start + 2) if start + 2 < len(TOOL_NAMES) else None
        return types.ListToolsResult(tools=tools, next_cursor=next_cursor)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text=f"called {params.name}")])

    return Server("paged", on_list_tools=list_tools, on_call_tool=call_tool)
