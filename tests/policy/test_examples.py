"""The README "Policies" worked examples (examples/policies/*.yaml) decide as documented."""

from __future__ import annotations

from pathlib import Path

from bastion.auth.principal import Principal
from bastion.policy.holder import load_policy_file

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def test_read_only_agent_reads_but_never_writes() -> None:
    policy = load_policy_file(EXAMPLES / "read-only-agent.yaml")
    agent = Principal(name="research-agent", roles=frozenset({"readonly"}), method="api_key")
    assert policy.decide(agent, "tool", "github", "get_issue", {}).allowed
    assert policy.decide(agent, "tool", "files", "read_file", {}).allowed
    assert not policy.decide(agent, "tool", "github", "create_issue", {}).allowed
    assert not policy.decide(agent, "tool", "files", "write_file", {}).allowed
    assert not policy.decide(agent, "tool", "vault", "read_secret", {}).allowed
    assert policy.decide(agent, "resource", "files", "file:///srv/docs/guide.md").allowed
    assert not policy.decide(agent, "resource", "files", "file:///srv/docs/../etc/passwd").allowed
    assert not policy.visible(agent, "tool", "github", "create_issue")
    assert [limit.id for limit in policy.rate_limits] == ["agent-budget"]


def test_per_team_servers_keep_teams_apart() -> None:
    policy = load_policy_file(EXAMPLES / "per-team-servers.yaml")
    payments = Principal(name="pat", roles=frozenset({"payments"}), method="jwt")
    growth = Principal(name="gus", roles=frozenset({"growth"}), method="jwt")
    alice = Principal(name="alice@example.com", method="jwt")
    assert policy.decide(payments, "tool", "stripe", "refund", {}).allowed
    assert not policy.decide(payments, "tool", "crm", "find_contact", {}).allowed
    assert policy.decide(growth, "tool", "crm", "find_contact", {}).allowed
    assert not policy.decide(growth, "tool", "crm", "export_contacts", {}).allowed
    assert not policy.decide(growth, "tool", "stripe", "refund", {}).allowed
    assert policy.decide(growth, "tool", "search", "query", {}).allowed
    assert policy.decide(payments, "tool", "search", "query", {}).allowed
    assert policy.decide(alice, "tool", "crm", "export_contacts", {}).allowed
    assert policy.decide(alice, "prompt", "payments-db", "report").allowed


def test_argument_restriction_judges_each_call_on_its_arguments() -> None:
    policy = load_policy_file(EXAMPLES / "argument-restriction.yaml")
    bot = Principal(name="support-bot", method="api_key")
    assert policy.decide(bot, "tool", "files", "read_file", {"path": "/srv/public/faq.md"}).allowed
    assert not policy.decide(bot, "tool", "files", "read_file", {"path": "/etc/shadow"}).allowed
    assert not policy.decide(
        bot, "tool", "files", "read_file", {"path": "/srv/public/../../etc/shadow"}
    ).allowed
    assert policy.decide(bot, "tool", "db", "query", {"query": "SELECT * FROM tickets"}).allowed
    assert not policy.decide(bot, "tool", "db", "query", {"query": "DROP TABLE tickets"}).allowed
    assert not policy.decide(bot, "tool", "db", "query", {"query": "SELECT " + "x" * 3000}).allowed
    sample = policy.decide(bot, "tool", "db", "sample", {"rows": 500})
    assert (sample.allowed, sample.monitor) == (True, True)
    assert not policy.decide(bot, "tool", "db", "sample", {"rows": 5}).monitor
