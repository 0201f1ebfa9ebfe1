"""Verify every chain a sink holds: links, hashes, prune anchors, signed checkpoints, recorded heads, witnesses.

The checks themselves are the sans-IO `ChainVerifier` (chain.py); this module only feeds it from a reader and
the witnesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bastion.audit.chain import Anchor, AnchorKey, ChainReport, ChainVerifier, WitnessHead
from bastion.audit.sinks import AuditReader
from bastion.audit.witness import Witness


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """The verdict on one sink: one report per chain (replica)."""

    sink: str
    chains: tuple[ChainReport, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.chains)

    def to_dict(self) -> dict[str, Any]:
        return {"sink": self.sink, "ok": self.ok, "chains": [c.to_dict() for c in self.chains]}


async def verify_chain(
    reader: AuditReader,
    replica: str,
    *,
    key: AnchorKey | None = None,
    witnesses: Sequence[tuple[str, dict[str, Anchor]]] = (),
    checkpoint_gap: int | None = None,
    allow_unsigned: bool = False,
) -> ChainReport:
    """Check one replica's chain as `reader` stores it (see `verify` for the arguments)."""
    anchors = await reader.anchors(replica)
    prunes = [a for a in anchors if a.kind == "prune"]
    verifier = ChainVerifier(
        replica,
        anchor=max(prunes, key=lambda a: a.seq) if prunes else None,
        checkpoints=[a for a in anchors if a.kind == "checkpoint"],
        head=await reader.head(replica),
        key=key,
        witnesses=[WitnessHead(name=name, head=heads.get(replica)) for name, heads in witnesses],
        checkpoint_gap=checkpoint_gap,
        allow_unsigned=allow_unsigned,
    )
    async for stored in reader.scan(replica):
        verifier.feed(stored)
    return verifier.finish()


async def verify(
    reader: AuditReader,
    *,
    key: AnchorKey | None = None,
    replica: str | None = None,
    witnesses: Sequence[Witness] = (),
    checkpoint_gap: int | None = None,
    allow_unsigned: bool = False,
) -> VerifyReport:
    """Check every chain (or one) of a sink.

    Args:
        reader: The sink to check.
        key: Checks checkpoint and prune-anchor signatures; without it they are reported as unverified.
        replica: Only this chain.
        witnesses: Compared with each chain: a chain a witness knows is checked even when the sink lost it.
        checkpoint_gap: Most events between two signed checkpoints (`checkpoint_every + batch_size`).
        allow_unsigned: Accept unsigned prune anchors and witness heads, and signed chains without checkpoints.
    """
    heads = [(w.name, await w.heads(reader.name)) for w in witnesses]
    if replica is not None:
        replicas = [replica]
    else:
        known = set(await reader.replicas())
        replicas = sorted(known.union(*(h.keys() for _, h in heads)))
    reports = [
        await verify_chain(
            reader,
            r,
            key=key,
            witnesses=heads,
            checkpoint_gap=checkpoint_gap,
            allow_unsigned=allow_unsigned,
        )
        for r in replicas
    ]
    return VerifyReport(sink=reader.name, chains=tuple(reports))


def describe(report: VerifyReport) -> list[str]:
    """Human-readable lines: one per chain, plus its problem and warnings."""
    lines = []
    if not report.chains:
        lines.append(f"{report.sink}: no events")
    for chain in report.chains:
        span = f"seq {chain.first_seq}..{chain.last_seq}" if chain.events else "empty"
        verdict = "OK" if chain.ok else "FAILED"
        lines.append(
            f"{report.sink}: chain {chain.replica}: {verdict} ({chain.events} events, {span}, "
            f"{chain.checkpoints} signed checkpoints verified)"
        )
        if not chain.ok and chain.bad_seq is not None:
            where = f"seq {chain.bad_seq} (event {chain.bad_event_id}, {chain.bad_position})"
            lines.append(f"  first bad event at {where}: {chain.problem}")
        elif not chain.ok:
            lines.append(f"  problem at {chain.bad_position or 'the chain'}: {chain.problem}")
        lines += [f"  warning: {w}" for w in chain.warnings]
    return lines
