"""Flow policy pieces without peers: labels, fingerprints, the rules, observations and the taint store."""

from __future__ import annotations

import pytest

from bastion.errors import ConfigError
from bastion.guard.finding import Finding
from bastion.policy.fingerprints import MIN_CHARS, find, fingerprints
from bastion.policy.flow import FlowPolicy, SessionTaint, TaintMark
from bastion.policy.flow_config import FlowConfig
from bastion.policy.labels import ToolLabels, reference_of, references_from_servers, suggest
from bastion.policy.taint import TaintStore
from bastion.state import EmbeddedStateStore

SALT = b"0123456789abcdef"
RULE = {
    "id": "chain",
    "when": 'session.tainted("private") && session.tainted("untrusted") && tool.labels.exists(l, l == "egress")',
}


def flow(**config: object) -> FlowPolicy:
    return FlowPolicy(FlowConfig.model_validate({"enabled": True, **config}))


def mark(kind: str, tool: str = "files__read_file", event: str = "e1", at: float = 1.0) -> TaintMark:
    return TaintMark(kind=kind, tool=tool, time=at, findings=("secrets/aws_access_key",), event=event)


def test_reference_servers_are_recognised_by_their_package_not_their_name():
    assert (
        reference_of("npx", ["-y", "@modelcontextprotocol/server-filesystem", "/srv"]) == "server-filesystem"
    )
    assert reference_of("python", ["-m", "mcp_server_fetch"]) == "mcp-server-fetch"
    assert reference_of("uvx", ["mcp-server-time"]) == "mcp-server-time"
    assert reference_of("node", ["/opt/my-fetch.js"]) is None
    servers = {
        "fetch": {"command": "node", "args": ["/opt/other.js"]},
        "web": {"command": "uvx", "args": ["mcp-server-fetch"]},
    }
    assert references_from_servers(servers) == {"web": "mcp-server-fetch"}


def test_labels_join_config_globs_and_the_reference_table_and_unlabelled_tools_get_the_default():
    config = FlowConfig.model_validate(
        {
            "labels": [{"servers": ["mail*"], "tools": ["send_*"], "labels": ["egress", "writes"]}],
            "unlabelled": ["egress"],
        }
    )
    labels = ToolLabels(config, {"files": "server-filesystem", "everything": "server-everything"})
    assert labels.of("mail", "send_email") == ("egress", "writes")
    assert labels.of("files", "read_text_file") == ("reads_private",)
    assert labels.of("files", "move_file") == ("destructive", "writes")
    assert labels.of("everything", "echo") == ()  # the reference table says harmless
    assert labels.of("crm", "lookup") == ("egress",)  # nobody named it
    assert ToolLabels(
        config.model_copy(update={"reference_labels": False}), {"files": "server-filesystem"}
    ).of("files", "read_text_file") == ("egress",)


def test_scan_suggestions_use_the_reference_table_then_annotations_and_words():
    assert suggest({"name": "fetch"}, server="web", references={"web": "mcp-server-fetch"}) == [
        "egress",
        "reads_untrusted",
    ]
    assert suggest({"name": "send_message", "description": "Post a message to a Slack channel."}) == [
        "egress"
    ]
    assert "destructive" in suggest({"name": "drop_table", "annotations": {"destructiveHint": True}})
    assert suggest(
        {"name": "get_weather", "annotations": {"readOnlyHint": True, "openWorldHint": False}}
    ) == ["reads_private"]


def test_fingerprints_find_fragments_recased_and_respaced_but_never_hold_the_value():
    value = "AKIAQ3EGRZ5VX7MPLJ4T"
    prints = fingerprints(value, SALT)
    assert prints and all(value.lower() not in digest for _, digest in prints)
    known = {12: frozenset(d for _, d in prints)}
    assert find(["key: akia q3eg rz5v x7mp"], known, SALT)
    assert not find(["a different text entirely"], known, SALT)
    assert not find(["key: akia q3eg rz5v x7mp"], known, b"another-session!")  # salted per session
    assert fingerprints("x" * (MIN_CHARS - 1), SALT) == set()


def test_the_chain_rule_needs_both_taints_and_an_egress_tool():
    policy = flow(rules=[RULE])
    both = SessionTaint(marks=(mark("private"), mark("untrusted", "web__fetch", "e2", 2.0)))
    judge = lambda taint, labels: policy.judge(  # noqa: E731
        server="mail", tool="send", labels=labels, args={}, principal={}, taint=taint
    )
    verdict = judge(both, ("egress",))
    assert verdict is not None and verdict.action == "deny" and verdict.rule == "chain"
    assert [m.tool for m in verdict.chain] == ["files__read_file", "web__fetch"]
    assert "files__read_file" in verdict.explanation and "secrets/aws_access_key" in verdict.explanation
    assert judge(both, ("writes",)) is None
    assert judge(SessionTaint(marks=(mark("private"),)), ("egress",)) is None


def test_the_strongest_matching_rule_wins_and_a_rule_that_cannot_be_evaluated_matches():
    policy = flow(
        rules=[
            {"id": "note", "when": "true", "action": "flag"},
            {"id": "broken", "when": "args.missing.deeper == 1", "action": "ask"},
        ]
    )
    verdict = policy.judge(server="s", tool="t", labels=(), args={}, principal={}, taint=SessionTaint())
    assert verdict is not None and (verdict.rule, verdict.action) == ("broken", "ask")


def test_invalid_flow_cel_is_a_config_error_naming_the_rule():
    with pytest.raises(ConfigError) as info:
        flow(rules=[{"id": "bad", "when": "session.tainted(("}])
    assert info.value.path == "policy.flow.rules[0].when"


def test_observe_taints_from_findings_and_labels_and_skips_redacted_and_echoed_values():
    policy = flow()
    raw = {"content": [{"type": "text", "text": "key AKIAQ3EGRZ5VX7MPLJ4T mail bob.jones@contoso.com"}]}
    key = Finding(
        detector="secrets", type="aws_access_key", path="$.content[0].text", start=4, end=24, action="redact"
    )
    email = Finding(detector="pii", type="email", path="$.content[0].text", start=30, end=51, action="flag")
    seen = policy.observe(
        tool="crm__get",
        labels=(),
        findings=[key, email],
        raw=raw,
        sent={},
        event="e1",
        principal="p",
        now=5.0,
    )
    assert [m.kind for m in seen.marks] == ["private"] and seen.values == ("bob.jones@contoso.com",)
    assert seen.marks[0].findings == ("pii/email", "secrets/aws_access_key")
    echoed = policy.observe(
        tool="mail__send", labels=(), findings=[email], raw=raw, sent={"to": "bob.jones@contoso.com"},
        event="e2", principal="p", now=6.0,
    )  # fmt: skip
    assert echoed.marks == () and echoed.values == ()
    injected = Finding(detector="injection", type="instruction_override", path="$.content[0].text")
    untrusted = policy.observe(
        tool="web__fetch", labels=("reads_untrusted",), findings=[injected], raw=raw, sent={}, event="e3",
        principal="p", now=7.0,
    )  # fmt: skip
    assert [(m.kind, m.findings) for m in untrusted.marks] == [
        ("untrusted", ("injection/instruction_override",))
    ]


async def test_the_taint_store_keeps_marks_and_salted_fingerprints_only():
    async with EmbeddedStateStore(":memory:") as store:
        taint = TaintStore(store, ttl=60)
        assert (await taint.load("s1")).marks == ()
        added = await taint.add("s1", [mark("private")], ["bob.jones@contoso.com"])
        await taint.add("s1", [mark("untrusted", "web__fetch", "e2", 2.0)], [])
        loaded = await taint.load("s1")
        assert [m.kind for m in loaded.marks] == ["private", "untrusted"]
        assert len(loaded.fingerprints) == added and set(loaded.fingerprints.values()) == {"e1"}
        stored = await store.list_members("flow:s1")
        assert all(b"contoso" not in v and "contoso" not in k for k, v in stored.items())
        assert (await taint.load("s2")).marks == ()
        await taint.forget("s1")
        assert (await taint.load("s1")).marks == ()


def test_remembered_rule_outcomes_still_follow_the_arguments_and_the_taint():
    policy = flow(
        rules=[{"id": "to-evil", "when": 'session.tainted("private") && args.to.endsWith("@evil.example")'}]
    )
    tainted = SessionTaint(marks=(mark("private"),))
    judge = lambda taint, to: policy.judge(  # noqa: E731
        server="mail", tool="send", labels=("egress",), args={"to": to}, principal={}, taint=taint
    )
    for _ in range(2):
        assert judge(tainted, "x@evil.example") is not None
        assert judge(tainted, "x@good.example") is None
        assert judge(SessionTaint(), "x@evil.example") is None
