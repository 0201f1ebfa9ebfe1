"""Policy decisions: default deny, deny wins, exact names, URI checks, CEL, monitor mode, visibility."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.auth.principal import Principal
from bastion.errors import ConfigError
from bastion.policy.engine import PolicyEngine
from bastion.policy.holder import parse_policy


def engine(policy: dict[str, Any]) -> PolicyEngine:
    return PolicyEngine(parse_policy(policy))


ALICE = Principal(name="alice", roles=frozenset({"dev"}), method="api_key")

GITHUB = engine(
    {
        "roles": {
            "dev": {
                "rules": [
                    {"id": "github-all", "effect": "allow", "tools": ["github__*"]},
                    {"id": "no-delete", "effect": "deny", "tools": ["github__delete_repo"]},
                    {"id": "public-files", "effect": "allow", "resources": ["file:///srv/public/*"]},
                ]
            }
        }
    }
)


def test_nothing_is_allowed_without_a_rule() -> None:
    decision = GITHUB.decide(ALICE, "tool", "slack", "post", {})
    assert (decision.allowed, decision.rule, decision.explanation) == (
        False,
        "",
        "no rule matched; default deny",
    )


def test_an_allow_rule_allows_and_names_itself() -> None:
    decision = GITHUB.decide(ALICE, "tool", "github", "create_issue", {})
    assert decision.allowed and decision.rule == "github-all"


def test_a_deny_rule_wins_over_a_broader_allow() -> None:
    decision = GITHUB.decide(ALICE, "tool", "github", "delete_repo", {})
    assert not decision.allowed and decision.rule == "no-delete"


@pytest.mark.parametrize(
    "variant",
    [
        "DELETE_REPO",
        "Delete_Repo",
        "d\u0435lete_repo",  # Cyrillic ie
        "delete_r\u0435po",  # Cyrillic ie
        "delete_repo ",
        " delete_repo",
        "delete\u200b_repo",
        "delete_repo\n",
        "\uff44\uff45\uff4c\uff45\uff54\uff45_repo",  # fullwidth
    ],
)
def test_look_alike_variants_of_a_denied_tool_are_denied(variant: str) -> None:
    decision = GITHUB.decide(ALICE, "tool", "github", variant, {})
    assert not decision.allowed
    assert not GITHUB.visible(ALICE, "tool", "github", variant)


def test_a_non_canonical_name_never_matches_an_allow_rule() -> None:
    assert not GITHUB.decide(ALICE, "tool", "github", "create issue", {}).allowed
    assert not GITHUB.decide(ALICE, "tool", "github", "créate_issue", {}).allowed


def test_the_caller_principal_without_the_role_gets_nothing() -> None:
    bob = Principal(name="bob", method="jwt")
    assert not GITHUB.decide(bob, "tool", "github", "create_issue", {}).allowed


@pytest.mark.parametrize(
    ("uri", "allowed"),
    [
        ("file:///srv/public/readme.md", True),
        ("file:///srv/public/a%20b.txt", True),
        ("file:///srv/public/../secret/key", False),
        ("file:///srv/public/%2e%2e/secret/key", False),
        ("file:///srv/public/%2E%2E/secret/key", False),
        ("file:///srv/public/%252e%252e/secret/key", False),
        ("file:///srv/%70ublic/readme.md", False),
        ("file:///srv/public/..%2Fsecret", False),
        ("file:///srv/public/.\\..\\secret", False),
        ("FILE:///srv/public/readme.md", False),
        ("file://localhost/srv/public/readme.md", False),
        ("file:/srv/public/readme.md", False),
        ("http:///srv/public/readme.md", False),
        ("/srv/public/readme.md", False),
    ],
)
def test_resource_uris_are_matched_only_in_their_plain_form(uri: str, allowed: bool) -> None:
    assert GITHUB.decide(ALICE, "resource", "files", uri).allowed is allowed
    assert GITHUB.visible(ALICE, "resource", "files", uri) is allowed


CEL = engine(
    {
        "principals": {"alice": ["reader"]},
        "roles": {
            "reader": {
                "rules": [
                    {
                        "id": "public-only",
                        "tools": ["files__read_file"],
                        "when": 'args.path.startsWith("/srv/public/") && args.path.size() < 100',
                    },
                    {
                        "id": "no-admin-path",
                        "effect": "deny",
                        "tools": ["files__*"],
                        "when": 'args.path.contains("admin")',
                    },
                ]
            }
        },
    }
)


@pytest.mark.parametrize(
    ("args", "allowed", "rule"),
    [
        ({"path": "/srv/public/a.txt"}, True, "public-only"),
        ({"path": "/etc/passwd"}, False, "public-only"),
        ({"path": "/srv/public/admin/a.txt"}, False, "no-admin-path"),
        ({}, False, "no-admin-path"),  # the deny condition cannot be evaluated: deny
        ({"path": 7}, False, "no-admin-path"),
    ],
)
def test_cel_conditions_restrict_arguments(args: dict[str, Any], allowed: bool, rule: str) -> None:
    plain = Principal(name="alice", method="api_key")  # role granted by the policy's principals map
    decision = CEL.decide(plain, "tool", "files", "read_file", args)
    assert (decision.allowed, decision.rule) == (allowed, rule)


def test_a_conditional_tool_is_still_listed() -> None:
    assert CEL.visible(Principal(name="alice"), "tool", "files", "read_file")


def test_conditions_see_the_principal_and_the_tool() -> None:
    policy = engine(
        {
            "roles": {
                "r": {
                    "rules": [
                        {
                            "tools": ["*"],
                            "when": '"r" in principal.roles && tool == "a__b" && server == "a" '
                            '&& principal.claims.iss == "https://idp"',
                        }
                    ]
                }
            }
        }
    )
    p = Principal(name="x", roles=frozenset({"r"}), method="jwt", claims={"iss": "https://idp"})
    assert policy.decide(p, "tool", "a", "b", {}).allowed
    assert not policy.decide(p, "tool", "a", "c", {}).allowed


def test_invalid_cel_is_a_config_error_naming_the_rule() -> None:
    with pytest.raises(ConfigError) as info:
        engine({"roles": {"r": {"rules": [{"tools": ["a__b"], "when": "args.x.startsWith("}]}}})
    assert info.value.path == "policy.roles.r.rules[0].when"


def test_invalid_schema_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy({"roles": {"r": {"rules": [{"effect": "maybe", "tools": ["x"]}]}}})
    assert info.value.path == "policy.roles.r.rules.0.effect"
    with pytest.raises(ConfigError):
        parse_policy({"mode": "enforce", "unknown": 1})


def test_global_monitor_mode_lets_would_be_denials_through_flagged() -> None:
    policy = engine({"mode": "monitor", "roles": {"dev": {"rules": [{"id": "x", "tools": ["a__*"]}]}}})
    decision = policy.decide(ALICE, "tool", "b", "c", {})
    assert decision.allowed and decision.monitor
    assert decision.explanation == "would be no rule matched; default deny (monitor)"
    assert policy.visible(ALICE, "tool", "b", "c")
    allowed = policy.decide(ALICE, "tool", "a", "c", {})
    assert allowed.allowed and not allowed.monitor


def test_a_monitor_deny_rule_flags_but_does_not_deny() -> None:
    policy = engine(
        {
            "roles": {
                "dev": {
                    "rules": [
                        {"id": "all", "tools": ["a__*"]},
                        {"id": "watch-drop", "effect": "deny", "tools": ["a__drop"], "monitor": True},
                    ]
                }
            }
        }
    )
    decision = policy.decide(ALICE, "tool", "a", "drop", {})
    assert (decision.allowed, decision.monitor, decision.rule) == (True, True, "watch-drop")
    assert not policy.decide(ALICE, "tool", "a", "other", {}).monitor


def test_a_monitor_allow_rule_flags_a_failed_condition() -> None:
    policy = engine(
        {
            "roles": {
                "dev": {"rules": [{"id": "rows", "tools": ["db__q"], "when": "args.n < 5", "monitor": True}]}
            }
        }
    )
    assert policy.decide(ALICE, "tool", "db", "q", {"n": 1}).monitor is False
    flagged = policy.decide(ALICE, "tool", "db", "q", {"n": 9})
    assert (flagged.allowed, flagged.monitor, flagged.rule) == (True, True, "rows")


def test_servers_only_rules_cover_every_kind_on_that_server() -> None:
    policy = engine({"roles": {"dev": {"rules": [{"servers": ["crm"]}]}}})
    assert policy.decide(ALICE, "tool", "crm", "x", {}).allowed
    assert policy.decide(ALICE, "prompt", "crm", "x").allowed
    assert policy.decide(ALICE, "server", "crm", "").allowed
    assert not policy.decide(ALICE, "tool", "CRM", "x", {}).allowed
    assert not policy.decide(ALICE, "server", "other", "").allowed


def test_task_calls_follow_tool_grants_on_the_same_server() -> None:
    assert GITHUB.decide(ALICE, "server", "github", "").allowed
    assert not GITHUB.decide(ALICE, "server", "slack", "").allowed


def test_a_rule_without_selectors_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy({"roles": {"r": {"rules": [{"effect": "allow"}]}}})
    assert info.value.path == "policy.roles.r.rules.0"


def test_disabled_policy_allows_everything() -> None:
    assert engine({"enabled": False}).decide(ALICE, "tool", "x", "y", {}).allowed


def test_undefined_roles_are_reported_as_warnings() -> None:
    policy = engine({"principals": {"bob": ["ghost"]}})
    assert policy.warnings == ["policy.principals.bob: role 'ghost' is not defined"]
