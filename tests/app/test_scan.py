"""`bastion scan` (the scan function against real stdio servers) and the `bastion tools` commands on pins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bastion.app.commands.scan import (
    EXIT_CLEAN,
    EXIT_ERROR,
    EXIT_FOUND,
    exit_status,
    render_json,
    render_table,
    scan,
)
from bastion.config import load_config
from bastion.guard.pins import ToolPins
from bastion.state import EmbeddedStateStore
from tests.guard.stub_detectors import stub_guard
from tests.peers import PYTHON, ROOT, bastion_env, calc_stdio
from tests.servers import shady

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SHADY = ROOT / "tests/servers/shady.py"


def shady_stdio(*flags: str) -> dict[str, object]:
    # Handshake era: no `server/discover` probe that a slow start on a loaded machine could miss.
    return {"transport": "stdio", "command": PYTHON, "args": [str(SHADY), *flags], "protocol": "legacy"}


def calc_legacy() -> dict[str, object]:
    return {**calc_stdio(), "protocol": "legacy"}


def write_config(tmp_path: Path, servers: dict[str, object], **extra: object) -> Path:
    path = tmp_path / "bastion.yaml"
    document = {"servers": servers, "state": {"path": str(tmp_path / "state.db")}, **extra}
    path.write_text(yaml.safe_dump(document))
    return path


def bastion(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bastion.cli", *args],
        env=bastion_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_scan_reports_the_poisoned_tool_and_nothing_on_a_clean_server(tmp_path):
    config = load_config(write_config(tmp_path, {"shady": shady_stdio(), "calc": calc_legacy()}))
    results = await scan(config, store=None, guard=stub_guard())
    by_server = {r.server: r for r in results}
    assert [t.name for t in by_server["shady"].suspicious] == ["add_notes"]
    (poisoned,) = by_server["shady"].suspicious
    assert poisoned.served is None and poisoned.findings[0].detector == "poisoning"
    assert by_server["calc"].suspicious == [] and len(by_server["calc"].tools) >= 5
    assert exit_status(results) == EXIT_FOUND
    assert exit_status([by_server["calc"]]) == EXIT_CLEAN
    table = render_table(results)
    assert "add_notes" in table and "POISONED" in table and "poisoning/hidden_instructions" in table
    report = json.loads(render_json(results))
    assert report["status"] == EXIT_FOUND and report["suspicious"] == 1
    assert shady.POISONED not in render_json(results)  # names and findings only, never the description


async def test_scan_compares_with_pins_and_reports_a_changed_definition(tmp_path):
    path = write_config(tmp_path, {"shady": shady_stdio()})
    async with EmbeddedStateStore(tmp_path / "state.db") as store:
        first = await scan(load_config(path), store=store, pin=True, guard=stub_guard())
        assert {t.pin for t in first[0].tools} == {"new"}
        path = write_config(tmp_path, {"shady": shady_stdio("--rugpulled")})
        second = await scan(load_config(path), store=store, guard=stub_guard())
        changed = [t for t in second[0].tools if t.changed]
        assert [t.name for t in changed] == ["weather"]
        assert "CHANGED" in render_table(second)
        pin = await ToolPins(store).get("shady", "weather")
        assert pin is not None and not pin.held  # a scan compares; it never records a change


async def test_scan_of_an_unreachable_server_is_an_error(tmp_path):
    broken = {"transport": "stdio", "command": str(tmp_path / "missing"), "connect_timeout_seconds": 5}
    config = load_config(write_config(tmp_path, {"broken": broken, "calc": calc_legacy()}))
    results = await scan(config, store=None, guard=stub_guard())
    assert results[0].error and not results[1].error
    assert exit_status(results) == EXIT_ERROR
    assert (await scan(config, store=None, servers=["nope"], guard=stub_guard()))[0].error


async def test_tools_commands_list_diff_approve_and_reject_pins(tmp_path):
    path = write_config(tmp_path, {"shady": shady_stdio()})
    async with EmbeddedStateStore(tmp_path / "state.db") as store:
        pins = ToolPins(store)
        first = {"name": "weather", "description": shady.WEATHER_V1}
        await pins.observe("shady", first)
        await pins.observe("shady", {**first, "description": shady.WEATHER_V2})
        await pins.observe("shady", {"name": "echo", "description": "Echo."})

    listed = bastion("tools", "list", "--config", str(path))
    assert listed.returncode == 0
    assert [line.split()[:3] for line in listed.stdout.splitlines()[1:]] == [
        ["shady", "echo", "pinned"],
        ["shady", "weather", "changed"],
    ]
    held = json.loads(bastion("tools", "list", "--config", str(path), "--held", "--format", "json").stdout)
    assert [(p["tool"], p["status"]) for p in held] == [("weather", "changed")]

    shown = bastion("tools", "diff", "--config", str(path), "shady", "weather")
    assert shown.returncode == 0
    assert f'-  "description": "{shady.WEATHER_V1}",' in shown.stdout
    assert f'+  "description": "{shady.WEATHER_V2}",' in shown.stdout
    assert bastion("tools", "diff", "--config", str(path), "shady", "echo").returncode == 1

    wrong = bastion("tools", "approve", "--config", str(path), "shady", "weather", "--hash", "0" * 64)
    assert wrong.returncode == 1
    rejected = bastion("tools", "reject", "--config", str(path), "shady", "weather", "--by", "carol")
    assert rejected.returncode == 0
    approved = bastion("tools", "approve", "--config", str(path), "shady", "weather", "--by", "dave")
    assert approved.returncode == 0 and "approved shady/weather" in approved.stdout
    assert bastion("tools", "approve", "--config", str(path), "shady", "weather").returncode == 1
    async with EmbeddedStateStore(tmp_path / "state.db") as store:
        pin = await ToolPins(store).get("shady", "weather")
        assert pin is not None and pin.definition["description"] == shady.WEATHER_V2
        assert pin.decided_by == "dave" and not pin.held
    assert bastion("tools", "forget", "--config", str(path), "shady", "weather").returncode == 0
    assert bastion("tools", "forget", "--config", str(path), "shady", "weather").returncode == 1


def test_tools_commands_refuse_an_invalid_config(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("servers: {Bad_Name: {transport: stdio, command: x}}\n")
    assert bastion("tools", "list", "--config", str(path)).returncode == 2
    assert bastion("scan", "--config", str(path)).returncode == 2
