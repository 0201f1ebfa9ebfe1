"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance`) against Bastion.

Bastion fronts server-everything (over stdio, one upstream, no name prefix) and must pass every server scenario that
server-everything passes when the suite talks to it directly, plus the DNS-rebinding scenario that server-everything
itself fails. The 0.2 alpha of the suite then checks the 2026-07-28 revision, which server-everything does not
speak at all: Bastion bridges it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.peers import (
    CONFORMANCE,
    CONFORMANCE_ALPHA,
    EVERYTHING_JS,
    LOOPBACK_CJS,
    NODE,
    bastion_env,
    free_port,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

UNKNOWN_TOOL_SCENARIOS = {"tools-call-simple-text", "tools-call-error"}
"""Scenarios calling tools server-everything does not have: it answers with an `isError` result, which the suite
accepts; Bastion answers an unknown tool with the spec's JSON-RPC error -32602 (the same error a denied tool gets)."""
RUN_DIR = re.compile(r"^server-(?P<name>.+)-\d{4}-\d\d-\d\dT[\d-]+Z$")


def _wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return  # it answers: a 4xx to a bare GET is an answer
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture(scope="module")
def everything_direct() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "NODE_OPTIONS": f"--require {LOOPBACK_CJS}"}
    proc = subprocess.Popen(
        [NODE, str(EVERYTHING_JS), "streamableHttp"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/mcp", proc)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def bastion_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("conformance")
    port = free_port()
    config = {
        "listen": {"host": "127.0.0.1", "port": port},
        "routing": {"namespace": False},
        "state": {"path": str(tmp / "state.db")},
        "audit": {"sinks": [{"type": "sqlite", "path": str(tmp / "audit.db")}]},
        "servers": {
            "everything": {
                "transport": "stdio",
                "command": NODE,
                "args": [str(EVERYTHING_JS), "stdio"],
                "protocol": "legacy",
            }
        },
    }
    path = tmp / "bastion.yaml"
    path.write_text(yaml.safe_dump(config))
    log = (tmp / "bastion.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli", "serve", "--config", str(path)],
        env=bastion_env(),
        cwd=tmp,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        _stop(proc)
        log.close()


def _run(binary: Path, url: str, out: Path, *extra: str) -> tuple[dict[str, tuple[int, int]], Path]:
    env = {**os.environ, "PATH": f"{Path(NODE).parent}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [str(binary), "server", "--url", url, "-o", str(out), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    results: dict[str, tuple[int, int]] = {}
    for checks in out.glob("server-*/checks.json"):
        match = RUN_DIR.match(checks.parent.name)
        assert match, checks
        statuses = [c.get("status") for c in json.loads(checks.read_text())]
        results[match["name"]] = (statuses.count("SUCCESS"), statuses.count("FAILURE"))
    assert results, done.stdout[-2000:] + done.stderr[-2000:]
    return results, out


def _failed_checks(out: Path, scenario: str) -> list[dict[str, str]]:
    failed = []
    for checks in out.glob(f"server-{scenario}-*/checks.json"):
        failed += [c for c in json.loads(checks.read_text()) if c.get("status") == "FAILURE"]
    return failed


def test_bastion_passes_every_scenario_server_everything_passes_directly(
    everything_direct, bastion_url, tmp_path
):
    direct, _ = _run(CONFORMANCE, everything_direct, tmp_path / "direct")
    through, _ = _run(CONFORMANCE, bastion_url, tmp_path / "bastion")
    passing_directly = {name for name, (_, failed) in direct.items() if failed == 0}
    passing_through = {name for name, (_, failed) in through.items() if failed == 0}
    print("direct:", sorted(passing_directly), "\nthrough Bastion:", sorted(passing_through))
    assert passing_directly - UNKNOWN_TOOL_SCENARIOS <= passing_through
    assert "dns-rebinding-protection" in passing_through
    assert "dns-rebinding-protection" not in passing_directly


def test_bastion_speaks_2026_07_28_in_front_of_a_handshake_era_server(bastion_url, tmp_path):
    scenarios = ["caching", "sep-2164-resource-not-found", "dns-rebinding-protection", "server-stateless"]
    for scenario in scenarios:
        results, out = _run(
            CONFORMANCE_ALPHA,
            bastion_url,
            tmp_path / scenario,
            "--spec-version",
            "2026-07-28",
            "--scenario",
            scenario,
        )
        # server-stateless has checks that need the suite's own fixture tools ("Not testable" here).
        real = [c for c in _failed_checks(out, scenario) if "Not testable" not in c.get("errorMessage", "")]
        assert not real, (scenario, real)
        assert results[scenario][0] > 0
