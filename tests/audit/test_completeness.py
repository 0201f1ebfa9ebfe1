"""Completeness: one client session driven through every method and every refusal kind leaves exactly one audit
event for each (requests Bastion answers itself, routing probes, setLevel, a held call and who answered it, a
duplicate id, a cancellation, session open and close)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import pytest
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from pydantic import BaseModel

from bastion.audit.event import AuditEvent
from bastion.config import parse_config
from bastion.errors import Denied
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import BaseStage
from bastion.pipeline.verdicts import PASS, Ask, Reject, Verdict
from bastion.testing import capture_audit, running_gateway
from tests.servers import calc

pytestmark = pytest.mark.anyio


class Policy(BaseStage):
    """Denies `slow_count` outright and holds `echo` for a human's approval."""

    name = "authorize"

    async def on_request(self, exchange: Exchange) -> Verdict:
        if exchange.target == "slow_count":
            return Reject(error=Denied("not allowed"), explanation="denied")
        if exchange.target == "echo":
            return Ask(question="Run echo?", ask_client=True)  # user consent, opted in (#14)
        return PASS


class Client:
    """A raw JSON-RPC client: what it sent, and waits for what came back."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.changed = anyio.Event()

    async def send(self, message: dict[str, Any], related: Any) -> None:
        self.messages.append(message)
        self.changed.set()
        self.changed = anyio.Event()

    async def wait_for(self, match: Any) -> dict[str, Any]:
        with anyio.fail_after(10):
            while True:
                found = next((m for m in self.messages if match(m)), None)
                if found is not None:
                    return found
                await self.changed.wait()


def request(request_id: int, method: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def _key(event: AuditEvent) -> tuple[str, str, str, str]:
    method = event.method or str(event.detail.get("method", ""))
    return (event.kind, method, event.target, event.outcome)


async def test_every_method_and_refusal_of_one_session_is_one_audit_event() -> None:
    audit = capture_audit()
    async with running_gateway({"calc": calc.build()}, stages=[Policy()], observers=[audit]) as gw:
        client = Client()
        session = await gw.open_session(transport="memory", outbound=client)

        async def call(message: dict[str, Any]) -> dict[str, Any]:
            await session.handle(message)
            return await client.wait_for(lambda m: m.get("id") == message["id"] and "method" not in m)

        assert "error" in await call(request(1, "tools/list"))  # before initialize: refused
        await call(request(2, "ping"))
        capabilities = {"elicitation": {"form": {}}}
        init = request(3, "initialize", protocolVersion="2025-11-25", capabilities=capabilities)
        init["params"]["clientInfo"] = {"name": "raw", "version": "1"}
        await call(init)
        await session.handle({"jsonrpc": "2.0", "method": "notifications/initialized"})
        for i, method in enumerate(
            ["tools/list", "prompts/list", "resources/list", "resources/templates/list"]
        ):
            await call(request(10 + i, method))
        await call(request(20, "tools/call", name="calc__add", arguments={"a": 1, "b": 2}))
        assert "error" in await call(request(21, "tools/call", name="calc__nope", arguments={}))  # a probe
        assert "error" in await call(request(22, "tools/call", name="hidden", arguments={}))
        await call(request(23, "prompts/get", name="calc__greet", arguments={"who": "x"}))
        await call(request(24, "resources/read", uri="calc://constants/pi"))
        assert "error" in await call(request(25, "resources/read", uri="file:///etc/passwd"))
        assert "error" in await call(request(26, "tools/call", name="calc__slow_count", arguments={"n": 1}))
        await call(request(27, "logging/setLevel", level="debug"))
        assert "error" in await call(request(28, "bogus/method"))
        # A held call: the client is asked (elicitation) and approves; the answer is recorded with who gave it.
        await session.handle(request(30, "tools/call", name="calc__echo", arguments={"text": "hi"}))
        asked = await client.wait_for(lambda m: m.get("method") == "elicitation/create")
        await session.handle(
            {
                "jsonrpc": "2.0",
                "id": asked["id"],
                "result": {"action": "accept", "content": {"approve": True}},
            }
        )
        assert "result" in await client.wait_for(lambda m: m.get("id") == 30 and "method" not in m)
        # A call in flight, the same id again (refused), then a cancellation of the first.
        await session.handle(request(40, "tools/call", name="calc__sleep", arguments={"seconds": 30}))
        await call(request(41, "ping"))  # served after the call above started: it is in flight now
        assert "error" in await call(request(40, "ping"))
        cancel = {"requestId": 40, "reason": "user\x1b[2K"}
        await session.handle({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel})
        with anyio.fail_after(10):
            while not any(e.outcome == "cancelled" for e in audit.events):
                await anyio.sleep(0.01)  # polling the captured events: the condition itself, bounded above
        await session.aclose()
        with anyio.fail_after(10):
            while not audit.of_kind("session_end"):
                await anyio.sleep(0.01)

    seen = Counter(_key(e) for e in audit.events if e.kind != "upstream_state")
    assert seen == Counter(
        {
            ("exchange", "tools/list", "", "error"): 1,
            ("exchange", "ping", "", "allow"): 2,
            ("exchange", "initialize", "", "allow"): 1,
            ("session_start", "", "", "info"): 1,
            ("notification", "notifications/initialized", "", "info"): 1,
            ("exchange", "tools/list", "", "allow"): 1,
            ("exchange", "prompts/list", "", "allow"): 1,
            ("exchange", "resources/list", "", "allow"): 1,
            ("exchange", "resources/templates/list", "", "allow"): 1,
            ("exchange", "tools/call", "add", "allow"): 1,
            ("exchange", "tools/call", "calc__nope", "error"): 1,
            ("exchange", "tools/call", "hidden", "error"): 1,
            ("exchange", "prompts/get", "greet", "allow"): 1,
            ("exchange", "resources/read", "calc://constants/pi", "allow"): 1,
            ("exchange", "resources/read", "file:///etc/passwd", "error"): 1,
            ("exchange", "tools/call", "slow_count", "deny"): 1,
            ("exchange", "logging/setLevel", "", "allow"): 1,
            ("exchange", "bogus/method", "", "error"): 1,
            ("server_request", "elicitation/create", "", "info"): 1,
            ("exchange", "tools/call", "echo", "allow"): 1,
            ("exchange", "ping", "", "error"): 1,  # the duplicate id, refused
            ("notification", "notifications/cancelled", "", "info"): 1,
            ("exchange", "tools/call", "sleep", "cancelled"): 1,
            ("session_end", "", "", "info"): 1,
        }
    )
    (asked_event,) = audit.of_kind("server_request")
    assert {k: asked_event.detail[k] for k in ("relatedRequestId", "answeredBy", "answer", "action")} == {
        "relatedRequestId": "30",
        "answeredBy": "anonymous",
        "answer": "result",
        "action": "accept",
    }
    (cancelled,) = [
        e for e in audit.of_kind("notification") if e.detail["method"] == "notifications/cancelled"
    ]
    assert (cancelled.detail["requestId"], cancelled.detail["reason"]) == ("40", "user\x1b[2K")
    (set_level,) = [e for e in audit.events if e.method == "logging/setLevel"]
    assert set_level.arguments == {"level": "debug"}


def _asking_server() -> MCPServer:
    """An upstream whose tool asks the client a question (elicitation) before it answers."""
    server = MCPServer("asker")

    class Confirm(BaseModel):
        ok: bool

    @server.tool()
    async def confirm(ctx: Context) -> str:
        """Ask the user to confirm."""
        answer = await ctx.elicit("Proceed?", Confirm)
        return answer.action

    return server


async def test_a_request_an_upstream_sends_to_the_client_is_recorded_under_that_upstream() -> None:
    audit = capture_audit()
    # A handshake-era upstream: its request comes over the back-channel of the call it belongs to.
    server = {
        "transport": "stdio",
        "command": "in-memory",
        "connect_timeout_seconds": 10,
        "protocol": "legacy",
    }
    config = parse_config({"servers": {"asker": server}})
    async with running_gateway({"asker": _asking_server()}, config=config, observers=[audit]) as gw:
        client = Client()
        session = await gw.open_session(transport="memory", outbound=client)
        init = request(
            1, "initialize", protocolVersion="2025-11-25", capabilities={"elicitation": {"form": {}}}
        )
        init["params"]["clientInfo"] = {"name": "raw", "version": "1"}
        await session.handle(init)
        await client.wait_for(lambda m: m.get("id") == 1)
        await session.handle({"jsonrpc": "2.0", "method": "notifications/initialized"})
        await session.handle(request(2, "tools/call", name="asker__confirm", arguments={}))
        asked = await client.wait_for(lambda m: m.get("method") == "elicitation/create")
        await session.handle({"jsonrpc": "2.0", "id": asked["id"], "result": {"action": "decline"}})
        assert "result" in await client.wait_for(lambda m: m.get("id") == 2 and "method" not in m)
        await session.aclose()

    (relayed,) = audit.of_kind("server_request")
    assert relayed.server == "asker"
    assert (relayed.detail["method"], relayed.detail["relatedRequestId"], relayed.detail["action"]) == (
        "elicitation/create",
        "2",
        "decline",
    )
