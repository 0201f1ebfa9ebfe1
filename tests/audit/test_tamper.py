"""The tamper suite: an insider with write access to the audit database (a real SQLite file, or a real PostgreSQL
schema of its own) tries each attack of issue 15; `verify` names what was done and where.

Every trail is written by the real recorder (Ed25519 or HMAC or no key, checkpoints every 10 events) with its
heads in two witnesses outside the audit store: the state store (a SQLite state file) and a file elsewhere.
"""

from __future__ import annotations

import secrets
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import pytest

from bastion.audit.chain import Anchor, ChainReport, link_hash
from bastion.audit.config import PostgresSinkConfig
from bastion.audit.recorder import AuditRecorder
from bastion.audit.signing import Ed25519Key, HmacKey, SigningKey
from bastion.audit.sinks import Sink
from bastion.audit.sinks.postgres import PostgresAuditSink
from bastion.audit.sinks.sqlite import SqliteAuditSink
from bastion.audit.verify import verify
from bastion.audit.witness import NAMESPACE, FileWitness, StateWitness, Witness
from bastion.state import EmbeddedStateStore
from tests.audit.conftest import PG_ADMIN_URL, event

pytestmark = pytest.mark.anyio

EVERY = 10
"""Checkpoint every 10 events."""
BATCH = 4
GAP = EVERY + BATCH
"""What verify is told: the most events between two signed checkpoints."""


def _ed25519() -> Ed25519Key:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519Key(private=Ed25519PrivateKey.generate())


@dataclass
class Db:
    """Raw SQL on the audit store, as the insider has it."""

    run: Callable[..., Any]
    events: str
    heads: str
    anchors: str
    make_sink: Callable[[], Sink]

    async def rows(self, replica: str) -> list[dict[str, Any]]:
        sql = f"SELECT seq, prev_hash, hash, content FROM {self.events} WHERE replica = '{replica}' ORDER BY seq"
        rows: list[dict[str, Any]] = await self.run(sql, fetch=True)
        return rows

    async def rehash(self, replica: str, edit: Callable[[str], str] = lambda c: c) -> None:
        """Apply `edit` to every event's content and recompute the whole chain and its head, as a forger would."""
        prev = "0" * 64
        rows = await self.rows(replica)
        for row in rows:
            content = edit(row["content"])
            digest = link_hash(replica, row["seq"], prev, content.encode())
            quoted = content.replace("'", "''")
            outcome = "allow" if '"outcome":"allow"' in content else "deny"  # the indexed column follows
            await self.run(
                f"UPDATE {self.events} SET content = '{quoted}', prev_hash = '{prev}', hash = '{digest}', "
                f"outcome = '{outcome}' WHERE replica = '{replica}' AND seq = {row['seq']}"
            )
            prev = digest
        await self.run(f"UPDATE {self.heads} SET hash = '{prev}' WHERE replica = '{replica}'")

    async def cut(self, replica: str, after: int) -> None:
        """Delete every event after `after` and move the recorded head back to it."""
        (row,) = [r for r in await self.rows(replica) if r["seq"] == after]
        await self.run(f"DELETE FROM {self.events} WHERE replica = '{replica}' AND seq > {after}")
        await self.run(
            f"UPDATE {self.heads} SET seq = {after}, hash = '{row['hash']}' WHERE replica = '{replica}'"
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Db]:
    if request.param == "sqlite":
        path = tmp_path / "audit" / "audit.db"

        async def run_sqlite(sql: str, fetch: bool = False) -> Any:
            def go() -> Any:
                conn = sqlite3.connect(path, isolation_level=None)
                conn.row_factory = sqlite3.Row
                try:
                    cursor = conn.execute(sql)
                    return [dict(r) for r in cursor.fetchall()] if fetch else None
                finally:
                    conn.close()

            return await anyio.to_thread.run_sync(go)

        yield Db(
            run_sqlite, "audit_events", "audit_heads", "audit_anchors", lambda: SqliteAuditSink(path=path)
        )
        return
    schema = f"tamper_{secrets.token_hex(6)}"
    config = PostgresSinkConfig(type="postgres", url=PG_ADMIN_URL, schema=schema)  # type: ignore[arg-type]
    conn = await asyncpg.connect(PG_ADMIN_URL)

    async def run_pg(sql: str, fetch: bool = False) -> Any:
        if fetch:
            return [dict(r) for r in await conn.fetch(sql)]
        await conn.execute(sql)
        return None

    prefix = f"{schema}.bastion_audit"
    try:
        yield Db(
            run_pg,
            f"{prefix}_events",
            f"{prefix}_heads",
            f"{prefix}_anchors",
            lambda: PostgresAuditSink(config),
        )
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.close()


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[EmbeddedStateStore]:
    async with EmbeddedStateStore(tmp_path / "state" / "bastion-state.db") as store:
        yield store


@pytest.fixture
def witnesses(state: EmbeddedStateStore, tmp_path: Path) -> list[Witness]:
    return [StateWitness(state), FileWitness(tmp_path / "other-volume" / "witness.jsonl")]


async def record(
    db: Db, key: SigningKey | None, witnesses: list[Witness], n: int, *, replica: str = "gw-1", start: int = 1
) -> None:
    """Write n events through the real recorder (strict: one at a time), then close it (final checkpoint)."""
    recorder = AuditRecorder(
        [db.make_sink()],
        replica=replica,
        key=key,
        checkpoint_every=EVERY,
        batch_size=BATCH,
        witnesses=witnesses,
    )
    await recorder.open()
    for i in range(start, start + n):
        await recorder.record(event(i), wait=True)
    await recorder.aclose()


async def check(
    db: Db, key: Any, witnesses: list[Witness], *, allow_unsigned: bool = False
) -> dict[str, ChainReport]:
    sink = db.make_sink()
    await sink.open()
    try:
        report = await verify(
            sink, key=key, witnesses=witnesses, checkpoint_gap=GAP, allow_unsigned=allow_unsigned
        )
    finally:
        await sink.aclose()
    return {c.replica: c for c in report.chains}


async def test_an_untouched_signed_trail_verifies_against_both_witnesses(
    db: Db, witnesses: list[Witness]
) -> None:
    key = _ed25519()
    await record(db, key, witnesses, 35)
    public = Ed25519Key.from_public_pem(key.public_pem())  # the auditor holds the public key only
    chain = (await check(db, public, witnesses))["gw-1"]
    assert (chain.ok, chain.last_seq, chain.checkpoints, chain.warnings) == (True, 35, 4, ()), chain


# -- the unsigned chain (signing switched off, witnesses on) -----------------------------------------------------


async def test_unsigned_chain_with_its_tail_cut_and_head_moved_back_is_named_by_the_witness(
    db: Db, witnesses: list[Witness]
) -> None:
    await record(db, None, witnesses, 30)
    await db.cut("gw-1", after=25)
    chain = (await check(db, None, witnesses))["gw-1"]
    assert not chain.ok and chain.bad_position == "witness state"
    assert (
        "chain ends at seq 25" in chain.problem and "events 26..30 at the end were deleted" in chain.problem
    )


async def test_unsigned_chain_with_a_forged_prune_anchor_hiding_its_start_fails(
    db: Db, witnesses: list[Witness]
) -> None:
    await record(db, None, witnesses, 30)
    (fifth,) = [r for r in await db.rows("gw-1") if r["seq"] == 5]
    await db.run(f"DELETE FROM {db.events} WHERE seq <= 5")
    sink = db.make_sink()
    await sink.write_anchor(Anchor(replica="gw-1", kind="prune", seq=5, hash=fifth["hash"], time=1.0))
    await sink.aclose()
    chain = (await check(db, None, witnesses))["gw-1"]
    assert (chain.ok, chain.bad_position) == (False, "prune anchor at seq 5")
    assert "unsigned" in chain.problem and "events 1..5" in chain.problem
    assert (await check(db, None, witnesses, allow_unsigned=True))["gw-1"].ok  # what the operator may accept


async def test_unsigned_chain_rehashed_after_turning_a_deny_into_an_allow_is_caught_by_the_witness(
    db: Db, witnesses: list[Witness]
) -> None:
    await record(db, None, witnesses, 30)
    await db.rehash("gw-1", lambda c: c.replace('"outcome":"deny"', '"outcome":"allow"'))
    assert all('"deny"' not in r["content"] for r in await db.rows("gw-1"))
    chain = (await check(db, None, witnesses))["gw-1"]
    assert (chain.ok, chain.bad_position) == (False, "witness state")
    assert "the event at seq 30 differs from the head witness state recorded" in chain.problem


# -- the HMAC-signed chain ---------------------------------------------------------------------------------------


async def test_hmac_chain_with_its_tail_and_checkpoints_deleted_is_named_by_the_witness(
    db: Db, witnesses: list[Witness]
) -> None:
    key = HmacKey("an-hmac-audit-key-of-32-bytes!!!")
    await record(db, key, witnesses, 30)
    await db.cut("gw-1", after=20)
    await db.run(f"DELETE FROM {db.anchors} WHERE seq > 20")
    for witness in witnesses:  # each witness alone is enough
        chain = (await check(db, key, [witness]))["gw-1"]
        assert (chain.ok, chain.bad_position) == (False, f"witness {witness.name}")
        assert "events 21..30 at the end were deleted" in chain.problem


async def test_hmac_chain_rewritten_with_every_checkpoint_deleted_fails_with_or_without_a_witness(
    db: Db, witnesses: list[Witness]
) -> None:
    key = HmacKey("an-hmac-audit-key-of-32-bytes!!!")
    await record(db, key, witnesses, 30)
    await db.rehash("gw-1", lambda c: c.replace('"outcome":"deny"', '"outcome":"allow"'))
    await db.run(f"DELETE FROM {db.anchors}")
    chain = (await check(db, key, witnesses))["gw-1"]
    assert (chain.ok, chain.checkpoints) == (False, 0)
    assert "differs from the head witness state recorded" in chain.problem
    chain = (await check(db, key, []))["gw-1"]  # no witness: the missing checkpoints alone fail it
    assert (chain.ok, chain.bad_position) == (False, "seq 1..30")
    assert "no signed checkpoint covers seq 1..30" in chain.problem


async def test_hmac_chain_with_an_unsigned_prune_anchor_fails_unless_allowed(
    db: Db, witnesses: list[Witness]
) -> None:
    key = HmacKey("an-hmac-audit-key-of-32-bytes!!!")
    await record(db, key, witnesses, 30)
    sink = db.make_sink()
    await sink.prune(1_700_000_000.0 + 8.5, None)  # events 1..8, no key: an unsigned anchor
    await sink.aclose()
    chain = (await check(db, key, witnesses))["gw-1"]
    assert (chain.ok, chain.bad_position) == (False, "prune anchor at seq 8")
    assert (await check(db, key, witnesses, allow_unsigned=True))["gw-1"].ok


# -- the witness itself and several replicas ---------------------------------------------------------------------


async def test_a_deleted_witness_is_named(
    db: Db, witnesses: list[Witness], state: EmbeddedStateStore
) -> None:
    key = _ed25519()
    await record(db, key, witnesses, 30)
    await state.delete_record(NAMESPACE, f"{db.make_sink().name}/gw-1")
    chain = (await check(db, key, witnesses))["gw-1"]
    assert (chain.ok, chain.bad_position) == (False, "witness state")
    assert "holds no head for chain gw-1" in chain.problem and "witness was deleted" in chain.problem


async def test_a_replayed_old_witness_is_named(db: Db, witnesses: list[Witness], tmp_path: Path) -> None:
    key = _ed25519()
    file_witness = witnesses[1]
    assert isinstance(file_witness, FileWitness)
    await record(db, key, witnesses, 12)
    shutil.copy(file_witness.path, tmp_path / "old-witness.jsonl")
    await record(db, key, witnesses, 18, start=13)
    shutil.copy(tmp_path / "old-witness.jsonl", file_witness.path)  # the old head comes back
    chain = (await check(db, key, [file_witness]))["gw-1"]
    assert (chain.ok, chain.bad_position) == (False, f"witness {file_witness.name}")
    assert "holds seq 12 but the chain has a signed checkpoint at seq 30" in chain.problem
    assert "rolled back" in chain.problem


async def test_two_replicas_chains_swapped_are_named(db: Db, witnesses: list[Witness]) -> None:
    key = _ed25519()
    await record(db, key, witnesses, 15, replica="gw-a")
    await record(db, key, witnesses, 15, replica="gw-b", start=100)
    for table in (db.events, db.heads, db.anchors):
        await db.run(f"UPDATE {table} SET replica = 'tmp' WHERE replica = 'gw-a'")
        await db.run(f"UPDATE {table} SET replica = 'gw-a' WHERE replica = 'gw-b'")
        await db.run(f"UPDATE {table} SET replica = 'gw-b' WHERE replica = 'tmp'")
    chains = await check(db, key, witnesses)
    for replica in ("gw-a", "gw-b"):
        assert (chains[replica].ok, chains[replica].bad_seq) == (False, 1)
        assert chains[replica].problem == "content does not match its hash (edited)"
    for replica in ("gw-a", "gw-b"):  # re-hashed under the swapped names: the witness heads still differ
        await db.rehash(replica)
    chains = await check(db, key, witnesses)
    for replica in ("gw-a", "gw-b"):  # the checkpoints signed for the other name no longer verify either
        assert not chains[replica].ok
        assert "bad signature (forged)" in chains[replica].problem, chains[replica]
    await db.run(f"DELETE FROM {db.anchors}")
    chains = await check(db, key, witnesses)
    assert all("differs from the head witness state recorded" in c.problem for c in chains.values()), chains


async def test_replicas_with_keys_of_their_own_verify_with_both_public_keys(
    db: Db, witnesses: list[Witness]
) -> None:
    from bastion.audit.signing import KeyRing

    key_a, key_b = _ed25519(), _ed25519()
    await record(db, key_a, witnesses, 20, replica="gw-a")
    await record(db, key_b, witnesses, 20, replica="gw-b", start=100)
    ring = KeyRing([Ed25519Key.from_public_pem(k.public_pem()) for k in (key_a, key_b)])
    chains = await check(db, ring, witnesses)
    assert [(c.ok, c.checkpoints, c.warnings) for c in chains.values()] == [(True, 2, ())] * 2
    only_a = await check(db, Ed25519Key.from_public_pem(key_a.public_pem()), witnesses)
    assert only_a["gw-a"].ok and not only_a["gw-b"].ok  # gw-b's checkpoints cannot be checked with gw-a's key
    assert any("signed by another key" in w for w in only_a["gw-b"].warnings)
