"""Verify every chain a sink holds: links, hashes, prune anchors, signed checkpoints, recorded heads.

The checks themselves are the sans-IO `ChainVerifier` (chain.py); this module only feeds it from a reader.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.audit.chain import AnchorKey, ChainReport, ChainVerifier
from bastion.audit.sinks import AuditReader


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


async def verify_chain(reader: AuditReader, replica: str, *, key: AnchorKey | None = None) -> ChainReport:
    """Check one replica's chain as `reader` stores it."""
    anchors = await reader.anchors(replica)
    prunes = [a for a in anchors if a.kind == "prune"]
    verifier = ChainVerifier(
        replica,
        anchor=max(prunes, key=lambda a: a.seq) if prunes else None,
        checkpoints=[a for a in anchors if a.kind == "checkpoint"],
        head=await reader.head(replica),
        key=key,
    )
    async for stored in reader.scan(replica):
        verifier.feed(stored)
    return verifier.finish()


async def verify(
    reader: AuditReader, *, key: AnchorKey | None = None, replica: str | None = None
) -> VerifyReport:
    """Check every chain (or one) of a sink.

    Args:
        reader: The sink to check.
        key: Checks checkpoint and prune-anchor signatures; without it they are reported as unverified.
        replica: Only this chain.
    """
    replicas = [replica] if replica is not None else await reader.replicas()
    reports = [await verify_chain(reader, r, key=key) for r in replicas]
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
        if not chain.ok:
            where = f" at seq {chain.bad_seq} (event {chain.bad_event_id}, {chain.bad_position})"
            lines.append(f"  first bad event{where if chain.bad_seq is not None else ''}: {chain.problem}")
        lines += [f"  warning: {w}" for w in chain.warnings]
    return lines
