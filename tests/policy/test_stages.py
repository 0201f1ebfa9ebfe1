"""The authenticate, authorize and rate-limit stages on real exchanges, through the real chain runner."""

from __future__ import annotations

from typing import Any

from bastion.auth.principal import ANONYMOUS, Principal
from bastion.errors import AuthError, InvalidParams, RateLimited
from bastion.pipeline.chain import Pipeline
from bastion.pipeline.exchange import Exchange, SessionInfo
from bastion.pipeline.stages.authorize import AuthenticateStage, AuthorizeStage, filter_listing
from bastion.pipeline.stages.ratelimit import RateLimitStage
from bastion.policy.config import PolicyConfig
from bastion.policy.holder import PolicyHolder, parse_policy
from bastion.state import EmbeddedStateStore

DEV = Principal(name="alice", roles=frozenset({"dev"}), method="api_key")

POLICY = parse_policy(
    {
        "roles": {
            "dev": {
                "rules": [
                    {"id": "github", "tools": ["github__*"], "prompts": ["github__*"]},
                    {"id": "no-delete", "effect": "deny", "tools": ["github__delete_repo"]},
                    {"id": "watch", "effect": "deny", "tools": ["github__merge"], "monitor": True},
                    {"id": "docs", "resources": ["file:///docs/*"]},
                ]
            }
        },
        "rate_limits": [{"id": "burst", "per": "principal", "calls": 2, "window_seconds": 60}],
    }
)


def exchange(
    method: str, params: dict[str, Any], server: str | None, target: str | None, principal: Principal = DEV
) -> Exchange:
    session = SessionInfo(session_id="s1", transport="memory", principal=principal)
    return Exchange(session=session, method=method, params=params, server=server, target=target)


def call(name: str, server: str, target: str, **args: Any) -> Exchange:
    return exchange("tools/call", {"name": name, "arguments": args}, server, target)


async def test_a_denied_tool_gets_exactly_the_unknown_tool_error() -> None:
    pipeline = Pipeline([AuthorizeStage(PolicyHolder.from_config(POLICY))])
    denied = call("github__delete_repo", "github", "delete_repo")
    error = await pipeline.run_request(denied)
    unknown = InvalidParams("Unknown tool: github__delete_repo")
    assert isinstance(error, InvalidParams)
    assert error.to_jsonrpc_error() == unknown.to_jsonrpc_error()
    assert denied.outcome == "deny"
    assert denied.decisions[0].explanation == "denied by rule no-delete"
    assert denied.annotations["authorize"]["rule"] == "no-delete"


async def test_a_hidden_tool_called_directly_is_refused_like_an_unknown_one() -> None:
    pipeline = Pipeline([AuthorizeStage(PolicyHolder.from_config(POLICY))])
    hidden = call("slack__post", "slack", "post")
    error = await pipeline.run_request(hidden)
    assert error is not None
    assert error.to_jsonrpc_error() == InvalidParams("Unknown tool: slack__post").to_jsonrpc_error()
    assert hidden.decisions[0].explanation == "no rule matched; default deny"


async def test_a_denied_resource_gets_the_unknown_resource_error() -> None:
    pipeline = Pipeline([AuthorizeStage(PolicyHolder.from_config(POLICY))])
    uri = "file:///docs/%2e%2e/etc/passwd"
    error = await pipeline.run_request(exchange("resources/read", {"uri": uri}, "files", uri))
    expected = InvalidParams(f"Unknown resource: {uri}", data={"uri": uri})
    assert error is not None and error.to_jsonrpc_error() == expected.to_jsonrpc_error()
    assert (
        await pipeline.run_request(
            exchange("resources/read", {"uri": "file:///docs/a"}, "files", "file:///docs/a")
        )
        is None
    )


async def test_a_monitored_denial_is_flagged_and_proceeds() -> None:
    pipeline = Pipeline([AuthorizeStage(PolicyHolder.from_config(POLICY))])
    merge = call("github__merge", "github", "merge")
    assert await pipeline.run_request(merge) is None
    assert merge.outcome == "flag"
    assert [f.type for f in merge.findings] == ["would_deny"]
    assert merge.findings[0].detector == "policy"


async def test_prompts_via_completion_are_judged_as_prompts() -> None:
    pipeline = Pipeline([AuthorizeStage(PolicyHolder.from_config(POLICY))])
    params = {"ref": {"type": "ref/prompt", "name": "slack__greet"}, "argument": {"name": "a", "value": ""}}
    error = await pipeline.run_request(exchange("completion/complete", params, "slack", "greet"))
    assert error is not None and error.message == "Unknown prompt: slack__greet"


async def test_local_and_list_methods_are_not_judged_on_the_request() -> None:
    pipeline = Pipeline([AuthorizeStage(PolicyHolder.from_config(POLICY))])
    assert await pipeline.run_request(exchange("tools/list", {}, None, None)) is None
    assert await pipeline.run_request(exchange("ping", {}, None, None)) is None


async def test_tasks_on_a_server_without_grants_are_denied_with_the_policy_code() -> None:
    pipeline = Pipeline([AuthorizeStage(PolicyHolder.from_config(POLICY))])
    error = await pipeline.run_request(exchange("tasks/get", {"taskId": "t"}, "slack", "t"))
    assert error is not None and error.to_jsonrpc_error()["code"] == -31001


def test_lists_only_show_what_the_caller_may_use() -> None:
    engine = PolicyHolder.from_config(POLICY).engine
    tools = [{"name": n} for n in ("github__get_issue", "github__delete_repo", "slack__post", "noseparator")]
    assert [t["name"] for t in filter_listing(engine, DEV, "tools/list", tools)] == ["github__get_issue"]
    resources = [
        {"uri": "file:///docs/a"},
        {"uri": "file:///etc/passwd"},
        {"uriTemplate": "file:///docs/{x}"},
    ]
    visible = filter_listing(engine, DEV, "resources/list", resources)
    assert visible == [{"uri": "file:///docs/a"}, {"uriTemplate": "file:///docs/{x}"}]
    assert filter_listing(engine, ANONYMOUS, "prompts/list", [{"name": "github__p"}]) == []


async def test_anonymous_sessions_are_refused_when_auth_is_required() -> None:
    pipeline = Pipeline([AuthenticateStage(required=True), AuthorizeStage(PolicyHolder.from_config(POLICY))])
    anon = exchange("tools/call", {"name": "github__x"}, "github", "x", principal=ANONYMOUS)
    error = await pipeline.run_request(anon)
    assert isinstance(error, AuthError) and error.data == {"authFailure": "missing"}
    assert len(anon.decisions) == 1  # authorization never ran
    assert await Pipeline([AuthenticateStage(required=False)]).run_request(anon) is None


async def test_over_the_limit_a_call_is_told_when_to_retry() -> None:
    async with EmbeddedStateStore(":memory:") as store:
        holder = PolicyHolder.from_config(POLICY)
        pipeline = Pipeline([AuthorizeStage(holder), RateLimitStage(holder, store)])
        results = [await pipeline.run_request(call("github__get", "github", "get")) for _ in range(3)]
        assert results[:2] == [None, None]
        limited = results[2]
        assert isinstance(limited, RateLimited)
        assert limited.to_jsonrpc_error() == {
            "code": -31002,
            "message": "Rate limit exceeded, retry later",
            "data": {"reason": "rate_limited", "retryAfter": 30, "limit": "burst", "kind": "calls"},
        }


async def test_a_denied_call_does_not_spend_the_budget() -> None:
    async with EmbeddedStateStore(":memory:") as store:
        holder = PolicyHolder.from_config(POLICY)
        pipeline = Pipeline([AuthorizeStage(holder), RateLimitStage(holder, store)])
        for _ in range(5):
            await pipeline.run_request(call("github__delete_repo", "github", "delete_repo"))
        assert await pipeline.run_request(call("github__get", "github", "get")) is None


async def test_concurrency_slots_are_released_when_the_exchange_finishes() -> None:
    config = PolicyConfig.model_validate(
        {
            "roles": {"dev": {"rules": [{"tools": ["*"]}]}},
            "rate_limits": [{"id": "one-at-a-time", "per": "tool", "tools": ["db__*"], "concurrent": 1}],
        }
    )
    async with EmbeddedStateStore(":memory:") as store:
        stage = RateLimitStage(PolicyHolder.from_config(config), store)
        pipeline = Pipeline([stage])
        first = call("db__q", "db", "q")
        assert await pipeline.run_request(first) is None
        second = await pipeline.run_request(call("db__q", "db", "q"))
        assert isinstance(second, RateLimited) and second.data and second.data["kind"] == "concurrent"
        assert await pipeline.run_request(call("other__q", "other", "q")) is None  # not covered by the limit
        await stage.on_exchange(first)  # observers see every finished exchange
        assert stage.held == 0
        assert await pipeline.run_request(call("db__q", "db", "q")) is None


async def test_rate_limits_per_role_share_one_bucket_across_principals() -> None:
    config = PolicyConfig.model_validate(
        {
            "roles": {"team": {"rules": [{"tools": ["*"]}]}},
            "rate_limits": [
                {"id": "team", "per": "role", "roles": ["team"], "calls": 1, "window_seconds": 10}
            ],
        }
    )
    async with EmbeddedStateStore(":memory:") as store:
        pipeline = Pipeline([RateLimitStage(PolicyHolder.from_config(config), store)])
        a = Principal(name="a", roles=frozenset({"team"}))
        b = Principal(name="b", roles=frozenset({"team"}))
        assert await pipeline.run_request(exchange("tools/call", {"name": "x__y"}, "x", "y", a)) is None
        assert isinstance(
            await pipeline.run_request(exchange("tools/call", {"name": "x__y"}, "x", "y", b)), RateLimited
        )
