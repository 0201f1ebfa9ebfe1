"""`bastion scan --labels` suggests flow labels for real servers' tool definitions."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from bastion.app.commands import tools as tools_cli
from tests.policy.flow_harness import servers

pytestmark = pytest.mark.integration


def scan(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bastion")
    tools_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


def test_scan_suggests_reference_labels_and_labels_from_words_for_every_tool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    config = tmp_path / "bastion.yaml"
    config.write_text(yaml.safe_dump({"servers": servers(tmp_path / "outbox.jsonl")}))
    assert scan(["scan", "--config", str(config), "--no-pins", "--labels", "--format", "json"]) == 0
    entries = json.loads(capsys.readouterr().out)["labels"]
    labels = {(e["servers"][0], e["tools"][0]): e["labels"] for e in entries}
    assert labels[("everything", "get-env")] == ["reads_private"]
    assert labels[("everything", "echo")] == []
    assert labels[("fetch", "fetch")] == ["egress", "reads_untrusted"]
    assert "egress" in labels[("mail", "send_email")]
    sources = {e["tools"][0]: e["source"] for e in entries}
    assert sources["fetch"].startswith("reference") and sources["send_email"].startswith("annotations")

    assert scan(["scan", "--config", str(config), "--no-pins", "--labels", "--server", "mail"]) == 0
    table = capsys.readouterr().out
    suggested = yaml.safe_load(table.split("(review before use):", 1)[1])
    assert {e["tools"][0] for e in suggested} == {"send_email", "count_outbox"}
