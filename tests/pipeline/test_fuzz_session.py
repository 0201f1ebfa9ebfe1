"""Property-based fuzzing of the session state machine and the pipeline behind it.

Whatever sequence of shape-valid messages a client sends (in any order, before or after initialize, with any
names and arguments), every request gets exactly one reply, no reply carries a secret from the arguments, and a
call the policy denies never reaches the upstream.
"""

from __future__ import annotations

from collections import Counter

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp.server import MCPServer

from bastion.auth.principal import Principal
from bastion.pipeline.stages.authorize import AuthenticateStage, AuthorizeStage
from bastion.policy.holder import PolicyHolder, parse_policy
from bastion.testing import memory_config, running_gateway

SECRET = "AKIAZZZZFUZZSECRET01"
"""Planted in arguments; must never come back in an error."""
ALLOWED = {"add"}

POLICY = parse_policy(
    {
        "default": "deny",
        "roles": {"user": {"rules": [{"id": "adds", "effect": "allow", "tools": ["calc__add"]}]}},
    }
)
USER = Principal(name="fuzzer", roles=frozenset({"user"}), method="api_key")


def recording_server(seen: list[str]) -> MCPServer:
    server = MCPServer("calc")

    @server.tool()
    def add(a: int = 0, b: int = 0) -> int:
        """Add."""
        seen.append("add")
        return a + b

    @server.tool()
    def delete_everything(confirm: str = "") -> str:
        """A tool the policy never allows."""
        seen.append("delete_everything")
        return "deleted"

    @server.prompt()
    def greet(who: str = "x") -> str:
        """Greet."""
        seen.append("greet")
        return f"hi {who}"

    return server


names = st.sampled_from(
    [
        "calc__add",
        "calc__delete_everything",
        "CALC__DELETE_EVERYTHING",
        "calc__delete_everything ",
        "calc__d\u0435lete_everything",  # Cyrillic e
        "calc____delete_everything",
        "delete_everything",
        "calc__greet",
        "nope__add",
        "",
    ]
)
arguments = st.one_of(
    st.fixed_dictionaries({"a": st.integers(-5, 5), "b": st.integers(-5, 5)}),
    st.fixed_dictionaries({"confirm": st.just(SECRET)}),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5) | st.just(SECRET), max_size=3),
)
methods = st.sampled_from(
    [
        "tools/call",
        "tools/list",
        "prompts/get",
        "prompts/list",
        "resources/read",
        "resources/list",
        "completion/complete",
        "ping",
        "initialize",
        "logging/setLevel",
        "tasks/get",
        "no/such/method",
    ]
)


@st.composite
def request_messages(draw, request_id):
    method = draw(methods)
    params: dict = {}
    if method in ("tools/call", "prompts/get"):
        params = {"name": draw(names), "arguments": draw(arguments)}
    elif method == "resources/read":
        params = {"uri": draw(st.sampled_from(["calc://x", "file:///etc/passwd", "calc://../x", "../x"]))}
    elif method == "initialize":
        params = {"protocolVersion": draw(st.sampled_from(["2025-11-25", "2024-11-05", "1999-01-01"]))}
    elif method == "completion/complete":
        params = {
            "ref": {"type": "ref/prompt", "name": draw(names)},
            "argument": {"name": "who", "value": SECRET},
        }
    elif draw(st.booleans()):
        params = {
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"},
            "cursor": draw(st.none()),
        }
    if method == "tools/call" and draw(st.booleans()):
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


@st.composite
def conversations(draw):
    out = []
    for request_id in range(1, draw(st.integers(1, 12)) + 1):
        kind = draw(st.sampled_from(["request", "request", "request", "notification", "response"]))
        if kind == "request":
            out.append(draw(request_messages(request_id)))
        elif kind == "notification":
            out.append(
                {
                    "jsonrpc": "2.0",
                    "method": draw(
                        st.sampled_from(
                            ["notifications/initialized", "notifications/cancelled", "notifications/x"]
                        )
                    ),
                    "params": {"requestId": -request_id},
                }
            )
        else:
            out.append({"jsonrpc": "2.0", "id": f"bastion-{request_id}", "result": {}})
    return out


class Collect:
    def __init__(self, expected: int) -> None:
        self.replies: list[dict] = []
        self.expected = expected
        self.done = anyio.Event()
        if expected == 0:
            self.done.set()

    async def send(self, message, related):
        if "method" not in message:
            self.replies.append(message)
            if len(self.replies) >= self.expected:
                self.done.set()


async def _drive(conversation: list[dict]) -> tuple[list[dict], list[str]]:
    seen: list[str] = []
    stages = [AuthenticateStage(required=True), AuthorizeStage(PolicyHolder.from_config(POLICY))]
    async with running_gateway(
        {"calc": recording_server(seen)}, config=memory_config(["calc"]), stages=stages
    ) as gateway:
        out = Collect(sum(1 for m in conversation if "method" in m and "id" in m))
        session = await gateway.open_session(transport="memory", outbound=out, principal=USER)
        for message in conversation:
            await session.handle(message)
        with anyio.fail_after(20):
            await out.done.wait()
        await session.aclose()
    return out.replies, seen


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conversations())
def test_any_conversation_gets_one_reply_per_request_leaks_nothing_and_denied_calls_never_run(conversation):
    replies, seen = anyio.run(_drive, conversation)
    requested = Counter(m["id"] for m in conversation if "method" in m and "id" in m)
    assert Counter(r["id"] for r in replies) == requested
    for reply in replies:
        assert ("result" in reply) != ("error" in reply)
        assert SECRET not in str(reply.get("error", ""))
    assert set(seen) <= ALLOWED
