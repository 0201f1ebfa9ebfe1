"""`bastion policy test --history`: a flow decision explained offline from a session history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.policy.test_cli import EXAMPLES, run
from tests.servers import shady

SEND = ["--tool", "mail__send_email", "--principal", "support-agent"]


def test_the_worked_example_refuses_egress_after_the_recorded_chain_and_names_it(
    capsys: pytest.CaptureFixture[str],
):
    config = ["policy", "test", "--config", str(EXAMPLES / "flow.yaml"), *SEND, "--args", '{"body": "hi"}']
    assert run([*config, "--history", str(EXAMPLES / "flow-history.json")]) == 1
    flow = json.loads(capsys.readouterr().out)["flow"]
    assert (flow["action"], flow["rule"], flow["labels"]) == ("deny", "no-exfiltration", ["egress", "writes"])
    assert [(m["kind"], m["tool"]) for m in flow["chain"]] == [
        ("private", "crm__get_customer"),
        ("untrusted", "web__fetch"),
    ]
    assert run(config) == 0  # no history: a single call is fine


def test_results_in_a_history_are_screened_by_the_guard_and_their_values_found_in_the_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    config = tmp_path / "bastion.yaml"
    config.write_text(
        yaml.safe_dump({"servers": {}, "policy": {"default": "allow", "flow": {"enabled": True}}})
    )
    history = tmp_path / "history.jsonl"
    result = {"content": [{"type": "text", "text": f"customer: Alice Smith <{shady.EMAIL}>"}]}
    history.write_text(json.dumps({"tool": "crm__get_customer", "time": 1, "result": result}) + "\n")
    argv = ["policy", "test", "--config", str(config), *SEND, "--history", str(history)]
    assert run([*argv, "--args", json.dumps({"body": f"fwd {shady.EMAIL.upper()}"})]) == 1
    report = capsys.readouterr().out
    flow = json.loads(report)["flow"]
    assert (flow["action"], flow["rule"]) == ("deny", "data-rule") and flow["fingerprints"] > 0
    assert [m["findings"] for m in flow["chain"]] == [["pii/email"]]
    assert shady.EMAIL not in report and shady.EMAIL.upper() not in report
    assert run([*argv, "--args", '{"body": "hello"}']) == 0


def test_an_audit_export_is_a_history(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    events = [
        {"event_id": "e1", "server": "crm", "target": "get_customer", "time": 5, "decisions": [
            {"stage": "guard", "phase": "response", "outcome": "flag",
             "findings": [{"detector": "secrets", "type": "aws_access_key", "path": "$", "action": "flag"}]}]},
        {"event_id": "e2", "server": "web", "target": "fetch", "time": 6, "decisions": []},
    ]  # fmt: skip
    history = tmp_path / "export.jsonl"
    history.write_text("".join(json.dumps(e) + "\n" for e in events))
    argv = ["policy", "test", "--config", str(EXAMPLES / "flow.yaml"), *SEND, "--args", "{}"]
    assert run([*argv, "--history", str(history)]) == 1
    chain = json.loads(capsys.readouterr().out)["flow"]["chain"]
    assert [(m["event"], m["findings"]) for m in chain] == [("e1", ["secrets/aws_access_key"]), ("e2", [])]


def test_an_unreadable_history_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json\n")
    argv = ["policy", "test", "--config", str(EXAMPLES / "flow.yaml"), *SEND, "--history", str(bad)]
    assert run(argv) == 2
    assert "invalid history" in capsys.readouterr().err
