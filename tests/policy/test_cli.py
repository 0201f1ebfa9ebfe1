"""`bastion policy test` and `bastion keys ...` through their argparse registration."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bastion.app.commands import keys as keys_cli
from bastion.app.commands import policy as policy_cli
from bastion.config.loader import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bastion")
    subparsers = parser.add_subparsers(dest="command", required=True)
    policy_cli.register(subparsers)
    keys_cli.register(subparsers)
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def test_policy_test_prints_an_allowed_decision_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(EXAMPLES / "argument-restriction.yaml")
    argv = ["policy", "test", "--config", config, "--principal", "support-bot", "--tool", "files__read_file"]
    assert run([*argv, "--args", '{"path": "/srv/public/a"}']) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["allowed"], report["rule"], report["explanation"]) == (
        True,
        "public-files-only",
        "allowed by rule public-files-only",
    )
    assert run([*argv, "--args", '{"path": "/etc/passwd"}']) == 1
    assert json.loads(capsys.readouterr().out)["allowed"] is False


def test_policy_test_takes_roles_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    config = str(EXAMPLES / "read-only-agent.yaml")
    base = ["policy", "test", "--config", config, "--principal", "x", "--tool", "github__get_issue"]
    assert run(base) == 1
    capsys.readouterr()
    assert run([*base, "--roles", "readonly"]) == 0


def test_policy_test_with_an_invalid_policy_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("policy: {roles: {r: {rules: [{tools: [a__b], when: 'x.('}]}}}\n")
    assert run(["policy", "test", "--config", str(bad), "--principal", "p", "--tool", "a__b"]) == 2
    assert "policy.roles.r.rules[0].when" in capsys.readouterr().err


def test_keys_create_list_revoke_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bastion.yaml"
    config.write_text(f"state:\n  path: {tmp_path / 'state.db'}\n")
    assert (
        run(
            [
                "keys",
                "create",
                "--config",
                str(config),
                "--principal",
                "ci",
                "--roles",
                "a,b",
                "--expires",
                "30d",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    key = out.out.strip()
    assert key.startswith("bst_") and "not shown again" in out.err
    assert run(["keys", "list", "--config", str(config)]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["principal"] == "ci" and listed["roles"] == ["a", "b"] and listed["expires_at"] is not None
    assert key.split("_", 2)[2] not in json.dumps(listed)
    assert run(["keys", "revoke", "--config", str(config), listed["id"]]) == 0
    assert run(["keys", "revoke", "--config", str(config), "ffffffffffffffff"]) == 1


def test_keys_anchors_a_relative_state_path_at_the_configs_folder_like_every_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "examples"
    folder.mkdir()
    config = folder / "secure.yaml"
    config.write_text("state:\n  path: .bastion/state.db\n")
    elsewhere = tmp_path / "repo-root"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # run from another folder, as from the repository root
    assert run(["keys", "create", "--config", "../examples/secure.yaml", "--principal", "ci"]) == 0
    capsys.readouterr()
    assert (folder / ".bastion/state.db").exists() and not (elsewhere / ".bastion").exists()
    assert load_config(config).state.path == str(folder.resolve() / ".bastion/state.db")  # what serve opens
    assert run(["keys", "list", "--config", str(config)]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert run(["keys", "revoke", "--config", "../examples/secure.yaml", listed["id"]]) == 0
