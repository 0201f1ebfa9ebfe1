"""Per-call cost of auditing: strict SQLite, strict PostgreSQL, JSON Lines and relaxed mode against audit off.

Calls go through a real in-process gateway (session -> pipeline -> routing -> upstream connection -> observers)
in front of an instant upstream, so what differs between runs is the audit work. Two shapes:
- sequential: one call at a time (every strict call pays a full commit, fsync included);
- concurrent: 32 calls in flight (group commit: concurrent calls share one commit).

Signing and witness (issue 15): `sqlite strict, unsigned` is the trail without a key or witness, `sqlite strict,
signed + witness` the default (an Ed25519 checkpoint every 1000 events, its head into the state store).

Run: .venv/bin/python bench/audit_cost.py [calls] [--no-postgres] [--signing-only]
PostgreSQL: localhost:5432, user postgres; a database with a random name is created and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.audit.chain import Anchor
from bastion.audit.config import AuditConfig, JsonlSinkConfig, PostgresSinkConfig, SqliteSinkConfig
from bastion.audit.recorder import AuditRecorder
from bastion.audit.signing import Ed25519Key
from bastion.audit.sinks import build_sink
from bastion.audit.sinks.sqlite import SqliteAuditSink
from bastion.audit.witness import StateWitness
from bastion.core.gateway import Gateway
from bastion.state import EmbeddedStateStore
from micro_session import ECHO_CALL, InstantUpstream, initialized_session, instant_config

PG_ADMIN = "postgresql://postgres@localhost:5432/test"
CONCURRENCY = 32


async def measure(recorder: AuditRecorder | None, n: int) -> tuple[float, float, float]:
    """(sequential, concurrent) microseconds per call, and events per commit in the concurrent run."""
    gw = Gateway(
        instant_config(), observers=[recorder] if recorder else [], transports={"up": InstantUpstream}
    )
    if recorder is not None:
        await recorder.open()
    await gw.start()
    call = await initialized_session(gw)
    params = ECHO_CALL
    for _ in range(100):
        await call("tools/call", params)
    t0 = time.perf_counter()
    for _ in range(n):
        await call("tools/call", params)
    sequential = (time.perf_counter() - t0) / n * 1e6

    async def worker(count: int) -> None:
        for _ in range(count):
            await call("tools/call", params)

    written, commits = (recorder.written, recorder.commits) if recorder is not None else (0, 0)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(n // CONCURRENCY) for _ in range(CONCURRENCY)))
    concurrent = (time.perf_counter() - t0) / (n // CONCURRENCY * CONCURRENCY) * 1e6
    concurrent_factor = 0.0
    if recorder is not None:
        concurrent_factor = (recorder.written - written) / max(1, recorder.commits - commits)
    await gw.aclose()
    if recorder is not None:
        await recorder.aclose()
        assert recorder.lost == 0
    return sequential, concurrent, concurrent_factor


async def checkpoint_cost(d: Path, store: EmbeddedStateStore, key: Ed25519Key, rounds: int = 200) -> float:
    """Microseconds of one checkpoint as the recorder takes it: sign, head into the state witness, anchor into
    the SQLite sink (both fsynced). Measured alone because on a shared machine it drowns in fsync noise."""
    witness = StateWitness(store)
    async with SqliteAuditSink(path=d / "cp.db") as sink:
        head = await sink.write("bench", [])
        t0 = time.perf_counter()
        for seq in range(1, rounds + 1):
            anchor = key.sign(
                Anchor(replica="bench", kind="checkpoint", seq=seq, hash=head.hash, time=time.time())
            )
            await witness.record(sink.name, anchor)
            await sink.write_anchor(anchor)
        return (time.perf_counter() - t0) / rounds * 1e6


@contextlib.asynccontextmanager
async def pg_database() -> AsyncIterator[str]:
    name = f"bastion_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@localhost:5432/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def main(n: int, postgres: bool, signing_only: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        store = EmbeddedStateStore(d / "state.db")
        key = Ed25519Key(private=Ed25519PrivateKey.generate())
        signing: list[tuple[str, Callable[[], AuditRecorder | None]]] = [
            ("sqlite strict, unsigned", lambda: _rec(SqliteSinkConfig(path=str(d / "u.db")))),
            (
                "sqlite strict, signed + witness",
                lambda: AuditRecorder(
                    [build_sink(SqliteSinkConfig(path=str(d / "s.db")))],
                    replica="bench",
                    key=key,
                    witnesses=[StateWitness(store)],
                ),
            ),
        ]
        runs: list[tuple[str, Callable[[], AuditRecorder | None]]] = [
            ("off", lambda: None),
            *signing,
            ("sqlite strict (synchronous=full)", lambda: _rec(SqliteSinkConfig(path=str(d / "a.db")))),
            (
                "sqlite strict (synchronous=normal)",
                lambda: _rec(SqliteSinkConfig(path=str(d / "b.db"), synchronous="normal")),
            ),
            ("jsonl strict (fsync)", lambda: _rec(JsonlSinkConfig(type="jsonl", path=str(d / "a.jsonl")))),
            ("sqlite relaxed (full)", lambda: _rec(SqliteSinkConfig(path=str(d / "c.db")), mode="relaxed")),
        ]
        if signing_only:
            runs = [runs[0], *signing, *signing]  # twice each, interleaved: the shared machine's noise shows
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(store)
            if postgres and not signing_only:
                url = await stack.enter_async_context(pg_database())
                runs.append(("postgres strict", lambda: _rec(PostgresSinkConfig(type="postgres", url=url))))  # type: ignore[arg-type]
            print(f"{n} calls per shape; concurrent = {CONCURRENCY} in flight; instant in-process upstream")
            print(
                f"{'audit':<36}{'sequential us/call':>20}{'ratio':>8}{'concurrent us/call':>21}{'ratio':>8}"
                f"{'events/commit':>15}"
            )
            base: tuple[float, float] | None = None
            unsigned: list[tuple[float, float]] = []
            for label, make in runs:
                seq, conc, factor = await measure(make(), n)
                base = base or (seq, conc)
                if label == "sqlite strict, unsigned":
                    unsigned.append((seq, conc))
                print(
                    f"{label:<36}{seq:>20.1f}{seq / base[0]:>8.2f}{conc:>21.1f}{conc / base[1]:>8.2f}"
                    f"{factor:>15.1f}"
                )
            cost = await checkpoint_cost(d, store, key)
            every = AuditConfig().checkpoint_every
            print(f"one checkpoint (Ed25519 sign + state witness + sink anchor, fsynced): {cost:.0f} us")
            for seq, conc in unsigned:
                print(
                    f"  per call at checkpoint_every={every}: {cost / every:.2f} us = "
                    f"{cost / every / seq * 100:.3f}% of strict sequential ({seq:.0f} us), "
                    f"{cost / every / conc * 100:.3f}% of strict concurrent ({conc:.0f} us)"
                )


def _rec(config: Any, mode: str = "strict") -> AuditRecorder:
    return AuditRecorder([build_sink(config)], replica="bench", mode=mode)  # type: ignore[arg-type]


if __name__ == "__main__":
    calls = int(next((a for a in sys.argv[1:] if a.isdigit()), "2000"))
    asyncio.run(main(calls, "--no-postgres" not in sys.argv, "--signing-only" in sys.argv))
