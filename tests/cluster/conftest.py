"""Cluster fixtures: a running cluster (two replicas, nginx, Redis, PostgreSQL), skipped with the reason when a
service is missing. Started once per module: starting replicas is the slow part."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster.harness import Cluster
from tests.cluster.services import cluster_problem, fresh_database, redis_prefix

DETECTORS_OFF: dict[str, Any] = {
    "enabled": True,
    "rug_pull": "hold",
    **{
        name: {"enabled": False}
        for name in ("secrets", "pii", "injection", "poisoning", "arguments", "schema", "classifier")
    },
}
"""Tool pins (rug pulls) only: for clusters whose tests are about failover, not detection (and start faster)."""


def running_cluster(tmp_path_factory: pytest.TempPathFactory, **options: Any) -> Iterator[Cluster]:
    """Start a cluster for a test module (or fail, saying which service is missing), stop it and drop its database and keys afterwards."""
    if (problem := cluster_problem()) is not None:
        pytest.fail(problem)  # `make test` sets these up; a missing one is a failure, not a pass
    with fresh_database() as pg_url, redis_prefix() as prefix:
        cluster = Cluster(workdir=tmp_path_factory.mktemp("cluster"), prefix=prefix, pg_url=pg_url, **options)
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()
