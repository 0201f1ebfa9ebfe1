"""`ListFilterStage`: lists narrowed to what the caller may use, on the response path, without a decision."""

from __future__ import annotations

from typing import Any

from bastion.auth.principal import Principal
from bastion.pipeline.chain import Pipeline
from bastion.pipeline.exchange import Exchange, SessionInfo
from bastion.pipeline.stages.list_filter import ListFilterStage
from bastion.policy.holder import PolicyHolder, parse_policy
from bastion.protocol.methods import NAMESPACE_SEPARATOR

DEV = Principal(name="alice", roles=frozenset({"dev"}), method="api_key")
POLICY = parse_policy(
    {"roles": {"dev": {"rules": [{"tools": ["github__*"], "resources": ["file:///docs/*"]}]}}}
)


def split(public: str) -> tuple[str, str] | None:
    server, sep, name = public.partition(NAMESPACE_SEPARATOR)
    return (server, name) if sep else None


def listed(method: str, result: dict[str, Any]) -> Exchange:
    exchange = Exchange(
        session=SessionInfo(session_id="s1", transport="memory", principal=DEV), method=method, params={}
    )
    exchange.result = result
    return exchange


def stage() -> ListFilterStage:
    return ListFilterStage(PolicyHolder.from_config(POLICY), split=split, server_of_uri=lambda _uri: "files")


async def test_a_tools_list_keeps_only_the_tools_the_policy_lets_the_caller_use() -> None:
    exchange = listed("tools/list", {"tools": [{"name": "github__issues"}, {"name": "shell__run"}]})
    assert await Pipeline([stage()]).run_response(exchange) is None
    assert exchange.result == {"tools": [{"name": "github__issues"}]}


async def test_narrowing_a_list_records_no_decision_and_keeps_the_outcome() -> None:
    exchange = listed(
        "resources/list", {"resources": [{"uri": "file:///docs/a"}, {"uri": "file:///etc/passwd"}]}
    )
    await Pipeline([stage()]).run_response(exchange)
    assert exchange.result == {"resources": [{"uri": "file:///docs/a"}]}
    assert exchange.decisions == [] and exchange.outcome == "allow"


async def test_other_methods_and_the_request_path_pass_untouched() -> None:
    call = listed("tools/call", {"content": [{"type": "text", "text": "shell__run"}]})
    before = dict(call.result or {})
    await Pipeline([stage()]).run_response(call)
    assert call.result == before
    listing = listed("tools/list", {"tools": [{"name": "shell__run"}]})
    assert await Pipeline([stage()]).run_request(listing) is None and listing.params == {}
