"""The official MCP conformance suite (npm `@modelcontextprotocol/conformance`) against Bastion.

Bastion fronts server-everything (over stdio, one upstream, no name prefix) and must pass every server scenario that
server-everything passes when the suite talks to it directly, plus the DNS-rebinding scenario that server-everything
itself fails. The 0.2 alpha of the suite then checks the 2026-07-28 revision, which server-everything does not
speak at all: Bastion bridges it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conformance.suite import NOT_TESTABLE, bastion_in_front, failed_checks, run_suite, serving
from tests.peers import (
    CONFORMANCE,
    CONFORMANCE_ALPHA,
    EVERYTHING_JS,
    LOOPBACK_CJS,
    NODE,
    free_port,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

UNKNOWN_TOOL_SCENARIOS = {"tools-call-simple-text", "tools-call-error"}
"""Scenarios calling tools server-everything does not have: it answers with an `isError` result, which the suite
accepts; Bastion answers an unknown tool with the spec's JSON-RPC error -32602 (the same error a denied tool gets)."""


@pytest.fixture(scope="module")
def everything_direct() -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "NODE_OPTIONS": f"--require {LOOPBACK_CJS}"}
    url = f"http://127.0.0.1:{port}/mcp"
    with serving([NODE, str(EVERYTHING_JS), "streamableHttp"], url, env=env):
        yield url


@pytest.fixture(scope="module")
def bastion_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = {
        "transport": "stdio",
        "command": NODE,
        "args": [str(EVERYTHING_JS), "stdio"],
        "protocol": "legacy",
    }
    with bastion_in_front(tmp_path_factory.mktemp("conformance"), "everything", server) as url:
        yield url


def test_bastion_passes_every_scenario_server_everything_passes_directly(
    everything_direct, bastion_url, tmp_path
):
    direct, _ = run_suite(CONFORMANCE, everything_direct, tmp_path / "direct")
    through, _ = run_suite(CONFORMANCE, bastion_url, tmp_path / "bastion")
    passing_directly = {name for name, (_, failed) in direct.items() if failed == 0}
    passing_through = {name for name, (_, failed) in through.items() if failed == 0}
    print("direct:", sorted(passing_directly), "\nthrough Bastion:", sorted(passing_through))
    assert passing_directly - UNKNOWN_TOOL_SCENARIOS <= passing_through
    assert "dns-rebinding-protection" in passing_through
    assert "dns-rebinding-protection" not in passing_directly


def test_bastion_speaks_2026_07_28_in_front_of_a_handshake_era_server(bastion_url, tmp_path):
    scenarios = ["caching", "sep-2164-resource-not-found", "dns-rebinding-protection", "server-stateless"]
    for scenario in scenarios:
        results, out = run_suite(
            CONFORMANCE_ALPHA,
            bastion_url,
            tmp_path / scenario,
            "--spec-version",
            "2026-07-28",
            "--scenario",
            scenario,
        )
        # server-stateless has checks that need the suite's own fixture tools ("Not testable" here).
        real = [c for c in failed_checks(out, scenario) if NOT_TESTABLE not in c.get("errorMessage", "")]
        assert not real, (scenario, real)
        assert results[scenario][0] > 0
