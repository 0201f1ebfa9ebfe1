"""The conformance suite against a dual-era upstream, directly and through Bastion with `protocol: auto`.

The upstream (`tests/servers/conformance_fixture.py`) has the names the suite's server scenarios call and, like the
suite's own fixture, speaks both eras and fails in-call sampling and elicitation in 2026-07-28. Bastion talks
2026-07-28 to it, so the handshake-era scenarios (the 0.1.16 suite) show whether a handshake-era client keeps
sampling, elicitation, logging and subscriptions; the alpha suite's 2026-07-28 requirements show the other era.
Through Bastion, every scenario that passes directly must pass.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance.suite import bastion_in_front, failed_checks, passing, run_suite, serving
from tests.peers import CONFORMANCE, CONFORMANCE_ALPHA, ROOT, bastion_env, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def fixture_url() -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    with serving(
        [sys.executable, str(ROOT / "tests/servers/conformance_fixture.py"), str(port)],
        url,
        env=bastion_env(),
    ):
        yield url


@pytest.fixture(scope="module")
def bastion_url(fixture_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = {"transport": "streamable-http", "url": fixture_url, "protocol": "auto"}
    with bastion_in_front(tmp_path_factory.mktemp("dual-era"), "fixture", server) as url:
        yield url


def _compare(
    binary: Path, direct_url: str, through_url: str, tmp: Path, *extra: str
) -> tuple[set[str], set[str]]:
    direct, out = run_suite(binary, direct_url, tmp / "direct", *extra)
    through, out_through = run_suite(binary, through_url, tmp / "through", *extra)
    passing_directly, passing_through = passing(out, direct), passing(out_through, through)
    print(
        f"{binary.parent.parent.parent.name} {' '.join(extra)}: direct {len(passing_directly)}/{len(direct)},"
        f" through Bastion {len(passing_through)}/{len(through)};"
        f" lost: {sorted(passing_directly - passing_through)}"
    )
    for name in sorted(set(direct) - passing_directly):
        print(
            f"  fails directly: {name}: {[c.get('errorMessage', '')[:160] for c in failed_checks(out, name)]}"
        )
    for name in sorted(passing_directly - passing_through):
        print(
            f"  lost: {name}: {[c.get('errorMessage', '')[:300] for c in failed_checks(out_through, name)]}"
        )
    return passing_directly, passing_through


def test_a_handshake_era_client_keeps_every_scenario_behind_a_dual_era_upstream(
    fixture_url, bastion_url, tmp_path
):
    passing_directly, passing_through = _compare(CONFORMANCE, fixture_url, bastion_url, tmp_path)
    kept = {"tools-call-sampling", "tools-call-elicitation", "resources-subscribe", "resources-unsubscribe"}
    assert kept <= passing_through
    assert passing_directly <= passing_through


def test_a_2026_07_28_client_keeps_every_scenario_behind_a_dual_era_upstream(
    fixture_url, bastion_url, tmp_path
):
    passing_directly, passing_through = _compare(
        CONFORMANCE_ALPHA, fixture_url, bastion_url, tmp_path, "--requirements", "2026-07-28"
    )
    assert {"caching", "sep-2164-resource-not-found", "tools-call-simple-text"} <= passing_through
    assert passing_directly <= passing_through
