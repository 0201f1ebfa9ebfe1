"""Many replicas writing one PostgreSQL audit trail at once: one hash chain per replica, every chain verified.

Writers are real `PostgresAuditSink`s (two per replica, as when two processes share a replica id), all writing
concurrently; `bastion audit verify` is the real command line against the same database.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import pytest
import yaml

from bastion.audit.config import PostgresSinkConfig
from bastion.audit.sinks.postgres import PostgresAuditSink
from bastion.audit.verify import verify
from tests.audit.conftest import write_events
from tests.cluster.services import fresh_database, postgres_problem
from tests.peers import bastion_env

pytestmark = [pytest.mark.anyio, pytest.mark.cluster, pytest.mark.integration]

REPLICAS = ("r1", "r2", "r3")
EVENTS = 60
"""Events each writer commits (in batches of 5)."""


@pytest.fixture
def pg_url() -> Iterator[str]:
    if (problem := postgres_problem()) is not None:
        pytest.fail(problem)  # `make test` sets these up; a missing one is a failure, not a pass
    with fresh_database() as url:
        yield url


def audit_verify(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bastion.cli", "audit", "verify", "--config", str(config), "--json"],
        env=bastion_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_concurrent_writers_of_several_replicas_keep_every_chain_valid(
    pg_url: str, tmp_path: Path
) -> None:
    config = PostgresSinkConfig(type="postgres", url=pg_url)  # type: ignore[arg-type]
    sinks = [PostgresAuditSink(config) for _ in range(2 * len(REPLICAS))]
    for sink in sinks:
        await sink.open()
    try:
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for n, sink in enumerate(sinks):
                    replica = REPLICAS[n % len(REPLICAS)]
                    write = functools.partial(
                        write_events, sink, EVENTS, replica=replica, start=1000 * n, batch=5
                    )
                    tg.start_soon(write)
        report = await verify(sinks[0])
    finally:
        for sink in sinks:
            await sink.aclose()
    assert report.ok, report.to_dict()
    assert {c.replica: (c.events, c.first_seq, c.last_seq) for c in report.chains} == {
        r: (2 * EVENTS, 1, 2 * EVENTS) for r in REPLICAS
    }

    path = tmp_path / "bastion.yaml"
    path.write_text(yaml.safe_dump({"audit": {"sinks": [{"type": "postgres", "url": pg_url}]}}))
    checked = audit_verify(path)
    assert checked.returncode == 0, checked.stderr
    assert {c["replica"]: c["ok"] for c in json.loads(checked.stdout)["chains"]} == dict.fromkeys(
        REPLICAS, True
    )

    conn = await asyncpg.connect(pg_url)
    try:  # someone with database access edits one event of one chain
        await conn.execute(
            "UPDATE bastion_audit_events SET content = replace(content, '\"b\":2', '\"b\":3') "
            "WHERE replica = 'r2' AND seq = 7"
        )
    finally:
        await conn.close()
    tampered = audit_verify(path)
    assert tampered.returncode == 1
    chains = {c["replica"]: c for c in json.loads(tampered.stdout)["chains"]}
    assert {r: c["ok"] for r, c in chains.items()} == {"r1": True, "r2": False, "r3": True}
    assert chains["r2"]["bad_seq"] == 7
