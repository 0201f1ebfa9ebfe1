"""A dual-era server with the tool, resource and prompt names the conformance suite's server scenarios call,
written from the scenario descriptions the suite itself prints (`conformance list` / its scenario docs).

Why: the suite's own fixture server is TypeScript in the suite's repository, not in its npm package. This one is
built on the official Python SDK's low-level `Server`, which serves both eras like the suite's fixture does, and,
like it, fails in-call sampling and elicitation in the 2026-07-28 era (no back-channel). So it shows what a
handshake-era client would lose behind a dual-era upstream, and that Bastion keeps it.

Run: `python tests/servers/conformance_fixture.py PORT` (Streamable HTTP on 127.0.0.1:PORT/mcp).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from typing import Any

import uvicorn
from mcp import types
from mcp.server import Server

PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5e2a3c70000000049454e44ae426082"
    )
).decode()
"""A 1x1 PNG."""
WAV = base64.b64encode(
    b"RIFF" + (36).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little") + (1).to_bytes(2, "little")
    + (1).to_bytes(2, "little") + (8000).to_bytes(4, "little") + (8000).to_bytes(4, "little")
    + (1).to_bytes(2, "little") + (8).to_bytes(2, "little") + b"data" + (0).to_bytes(4, "little")
).decode()  # fmt: skip
"""An empty 8 kHz mono WAV."""
SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}
EMPTY: dict[str, Any] = {"type": "object", "properties": {}}


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _tool(name: str, description: str, schema: dict[str, Any] | None = None) -> types.Tool:
    return types.Tool(name=name, description=description, input_schema=schema or EMPTY)


TOOLS = [
    _tool("test_simple_text", "Returns simple text"),
    _tool("test_image_content", "Returns an image"),
    _tool("test_audio_content", "Returns audio"),
    _tool("test_embedded_resource", "Returns an embedded resource"),
    _tool("test_multiple_content_types", "Returns text, image and resource"),
    _tool("test_tool_with_logging", "Logs three messages"),
    _tool("test_tool_with_progress", "Reports progress three times"),
    _tool("test_error_handling", "Always fails"),
    _tool(
        "test_sampling",
        "Asks the client's model",
        {"type": "object", "properties": {"prompt": {"type": "string"}}, "required": ["prompt"]},
    ),
    _tool(
        "test_elicitation",
        "Asks the client's user",
        {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
    ),
    _tool("test_elicitation_sep1034_defaults", "Elicitation with defaults"),
    _tool("test_elicitation_sep1330_enums", "Elicitation with every enum form"),
    _tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", SCHEMA_2020_12),
]
SEP1034: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "default": "John Doe"},
        "age": {"type": "integer", "default": 30},
        "score": {"type": "number", "default": 95.5},
        "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
        "verified": {"type": "boolean", "default": True},
    },
}
SEP1330: dict[str, Any] = {
    "type": "object",
    "properties": {
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        "untitledMulti": {
            "type": "array",
            "items": {"type": "string", "enum": ["option1", "option2", "option3"]},
        },
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
}


async def _elicit(ctx: Any, message: str, schema: dict[str, Any]) -> types.CallToolResult:
    request = types.ElicitRequest(
        params=types.ElicitRequestFormParams(message=message, requested_schema=schema)
    )
    answer = await ctx.session.send_request(request, types.ElicitResult)
    return types.CallToolResult(
        content=[
            _text(f"Elicitation completed: action={answer.action}, content={json.dumps(answer.content)}")
        ]
    )


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    args = params.arguments or {}
    name = params.name
    if name == "test_simple_text":
        content: list[Any] = [_text("This is a simple text response for testing.")]
    elif name == "test_image_content":
        content = [types.ImageContent(type="image", data=PNG, mime_type="image/png")]
    elif name == "test_audio_content":
        content = [types.AudioContent(type="audio", data=WAV, mime_type="audio/wav")]
    elif name == "test_embedded_resource":
        resource = types.TextResourceContents(
            uri="test://embedded-resource",
            mime_type="text/plain",
            text="This is an embedded resource content.",
        )
        content = [types.EmbeddedResource(type="resource", resource=resource)]
    elif name == "test_multiple_content_types":
        resource = types.TextResourceContents(
            uri="test://mixed-content-resource",
            mime_type="application/json",
            text='{"test":"data","value":123}',
        )
        content = [
            _text("Multiple content types test:"),
            types.ImageContent(type="image", data=PNG, mime_type="image/png"),
            types.EmbeddedResource(type="resource", resource=resource),
        ]
    elif name == "test_tool_with_logging":
        for line in ("Tool execution started", "Tool processing data", "Tool execution completed"):
            await ctx.session.send_log_message("info", line, related_request_id=ctx.request_id)
            await asyncio.sleep(0.05)  # the scenario asks for spaced messages
        content = [_text("Logging test completed")]
    elif name == "test_tool_with_progress":
        for value in (0, 50, 100):
            await ctx.session.report_progress(value, 100)
            await asyncio.sleep(0.05)  # the scenario asks for spaced notifications
        content = [_text("Progress test completed")]
    elif name == "test_error_handling":
        return types.CallToolResult(
            content=[_text("This tool intentionally returns an error for testing")], is_error=True
        )
    elif name == "test_sampling":
        message = types.SamplingMessage(role="user", content=_text(str(args.get("prompt", ""))))
        sampled = await ctx.session.create_message(messages=[message], max_tokens=100)
        reply = sampled.content.text if isinstance(sampled.content, types.TextContent) else ""
        content = [_text(f"LLM response: {reply}")]
    elif name == "test_elicitation":
        schema = {
            "type": "object",
            "properties": {
                "username": {"type": "string", "description": "User's response"},
                "email": {"type": "string", "description": "User's email address"},
            },
            "required": ["username", "email"],
        }
        return await _elicit(ctx, str(args.get("message", "")), schema)
    elif name == "test_elicitation_sep1034_defaults":
        return await _elicit(ctx, "Please review and update the form fields with defaults", SEP1034)
    elif name == "test_elicitation_sep1330_enums":
        return await _elicit(ctx, "Please select options from the enum fields", SEP1330)
    elif name == "json_schema_2020_12_tool":
        content = [_text(f"JSON Schema 2020-12 tool called with: {json.dumps(args)}")]
    else:
        return types.CallToolResult(content=[_text(f"Unknown tool: {name}")], is_error=True)
    return types.CallToolResult(content=content)


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=TOOLS)


RESOURCES = [
    types.Resource(
        uri="test://static-text", name="static-text", description="Static text", mime_type="text/plain"
    ),
    types.Resource(
        uri="test://static-binary", name="static-binary", description="A PNG", mime_type="image/png"
    ),
    types.Resource(
        uri="test://watched-resource",
        name="watched-resource",
        description="Subscribable",
        mime_type="text/plain",
    ),
]


async def list_resources(ctx: Any, params: Any) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=RESOURCES)


async def list_templates(ctx: Any, params: Any) -> types.ListResourceTemplatesResult:
    template = types.ResourceTemplate(
        uri_template="test://template/{id}/data",
        name="template",
        description="Data by id",
        mime_type="application/json",
    )
    return types.ListResourceTemplatesResult(resource_templates=[template])


async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    uri = str(params.uri)
    contents: list[Any]
    if uri == "test://static-text":
        text = "This is the content of the static text resource."
        contents = [types.TextResourceContents(uri=uri, mime_type="text/plain", text=text)]
    elif uri == "test://static-binary":
        contents = [types.BlobResourceContents(uri=uri, mime_type="image/png", blob=PNG)]
    elif uri == "test://watched-resource":
        contents = [types.TextResourceContents(uri=uri, mime_type="text/plain", text="watched")]
    elif uri.startswith("test://template/") and uri.endswith("/data"):
        item = uri[len("test://template/") : -len("/data")]
        text = json.dumps(
            {"id": item, "templateTest": True, "data": f"Data for ID: {item}"}, separators=(",", ":")
        )
        contents = [types.TextResourceContents(uri=uri, mime_type="application/json", text=text)]
    else:
        raise ValueError(f"Resource not found: {uri}")
    return types.ReadResourceResult(contents=contents)


async def subscribe(ctx: Any, params: Any) -> types.EmptyResult:
    return types.EmptyResult()


PROMPTS = [
    types.Prompt(name="test_simple_prompt", description="A simple prompt"),
    types.Prompt(
        name="test_prompt_with_arguments",
        description="A prompt with arguments",
        arguments=[
            types.PromptArgument(name="arg1", description="First test argument", required=True),
            types.PromptArgument(name="arg2", description="Second test argument", required=True),
        ],
    ),
    types.Prompt(
        name="test_prompt_with_embedded_resource",
        description="A prompt with an embedded resource",
        arguments=[types.PromptArgument(name="resourceUri", description="URI to embed", required=True)],
    ),
    types.Prompt(name="test_prompt_with_image", description="A prompt with an image"),
]


async def list_prompts(ctx: Any, params: Any) -> types.ListPromptsResult:
    return types.ListPromptsResult(prompts=PROMPTS)


async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    args = params.arguments or {}
    user = "user"
    if params.name == "test_simple_prompt":
        messages = [types.PromptMessage(role=user, content=_text("This is a simple prompt for testing."))]
    elif params.name == "test_prompt_with_arguments":
        text = f"Prompt with arguments: arg1='{args.get('arg1')}', arg2='{args.get('arg2')}'"
        messages = [types.PromptMessage(role=user, content=_text(text))]
    elif params.name == "test_prompt_with_embedded_resource":
        resource = types.TextResourceContents(
            uri=args.get("resourceUri", "test://example-resource"),
            mime_type="text/plain",
            text="Embedded resource content for testing.",
        )
        messages = [
            types.PromptMessage(
                role=user, content=types.EmbeddedResource(type="resource", resource=resource)
            ),
            types.PromptMessage(role=user, content=_text("Please process the embedded resource above.")),
        ]
    elif params.name == "test_prompt_with_image":
        messages = [
            types.PromptMessage(
                role=user, content=types.ImageContent(type="image", data=PNG, mime_type="image/png")
            ),
            types.PromptMessage(role=user, content=_text("Please analyze the image above.")),
        ]
    else:
        raise ValueError(f"Unknown prompt: {params.name}")
    return types.GetPromptResult(messages=messages)


async def complete(ctx: Any, params: Any) -> types.CompleteResult:
    return types.CompleteResult(completion=types.Completion(values=[], total=0, has_more=False))


async def set_level(ctx: Any, params: Any) -> types.EmptyResult:
    return types.EmptyResult()


def build() -> Server[Any]:
    return Server(
        "conformance-fixture",
        version="1.0.0",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_templates,
        on_read_resource=read_resource,
        on_subscribe_resource=subscribe,
        on_unsubscribe_resource=subscribe,
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_completion=complete,
        on_set_logging_level=set_level,
    )


if __name__ == "__main__":
    app = build().streamable_http_app()
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
