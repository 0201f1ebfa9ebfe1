"""Witnesses keep the latest checkpoint head per (sink, chain), only ever moving forward: in the SQLite state
store, in Redis (several replicas share it) and in a file; a torn last line of the file costs only that line."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bastion.audit.chain import Anchor
from bastion.audit.witness import FileWitness, StateWitness, Witness
from bastion.state import EmbeddedStateStore
from bastion.state.redis_store import RedisStateStore

pytestmark = pytest.mark.anyio

REDIS_URL = "redis://localhost:6379/0"


def head(replica: str, seq: int) -> Anchor:
    return Anchor(replica=replica, kind="checkpoint", seq=seq, hash=f"{seq:064x}", time=float(seq))


@pytest.fixture(params=["state-sqlite", pytest.param("state-redis", marks=pytest.mark.integration), "file"])
async def witness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Witness]:
    if request.param == "file":
        yield FileWitness(tmp_path / "witness.jsonl")
    elif request.param == "state-sqlite":
        async with EmbeddedStateStore(tmp_path / "state.db") as store:
            yield StateWitness(store)
    else:
        async with RedisStateStore(REDIS_URL, key_prefix=f"test-witness-{secrets.token_hex(6)}:") as redis:
            yield StateWitness(redis)


async def test_a_witness_keeps_the_latest_head_of_each_chain_and_never_moves_back(witness: Witness) -> None:
    await witness.record("sqlite", head("gw-a", 10))
    await witness.record("sqlite", head("gw-b", 5))
    await witness.record("sqlite", head("gw-a", 20))
    await witness.record("sqlite", head("gw-a", 15))  # a slower process, late: ignored
    await witness.record("files", head("gw-a", 99))  # another sink's chain of the same replica
    assert await witness.heads("sqlite") == {"gw-a": head("gw-a", 20), "gw-b": head("gw-b", 5)}
    assert await witness.heads("files") == {"gw-a": head("gw-a", 99)}
    assert await witness.heads("postgres") == {}


async def test_a_torn_last_line_of_a_file_witness_costs_only_that_line(tmp_path: Path) -> None:
    witness = FileWitness(tmp_path / "witness.jsonl")
    await witness.record("sqlite", head("gw-a", 10))
    with witness.path.open("ab") as out:
        out.write(b'{"sink": "sqlite", "replica": "gw-a", "seq": 2')  # a crash in the middle of a write
    assert await witness.heads("sqlite") == {"gw-a": head("gw-a", 10)}
