"""The hash chain: how events are linked, what anchors and checkpoints are, and the verifier (no I/O).

Rules:
- One chain per replica. Each event carries `seq` (1, 2, 3... per replica) and `prev_hash`, the hash of the
  event before it (`GENESIS` for seq 1, or the hash in the latest prune anchor once the start was pruned).
- `hash = sha256("bastion-audit-v1\\n" replica "\\n" seq "\\n" prev_hash "\\n" canonical-content)`. Editing any
  content, renumbering, deleting, inserting or moving an event breaks the link at (or right after) that event.
- Anchors are small signed-or-unsigned records about a chain: a `checkpoint` (the chain had this hash at this
  seq; signed, it defeats a rewrite of the whole chain and exposes a cut tail) and a `prune` anchor (the
  events up to this seq were deleted on purpose; the next event must link to this hash).
- The verifier consumes events in stored order and stops judging at the first problem, which it names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from bastion.audit.event import AuditEvent, canonical, event_from_content

GENESIS: Final = "0" * 64
"""`prev_hash` of the first event of a chain that was never pruned."""
_DOMAIN: Final = b"bastion-audit-v1\n"
"""Prefix of every hashed message, so an audit hash can never be confused with another sha256 use."""


def link_hash(replica: str, seq: int, prev_hash: str, content: bytes) -> str:
    """The hash of one event, given its chain position and its canonical content."""
    digest = hashlib.sha256(_DOMAIN)
    digest.update(f"{replica}\n{seq}\n{prev_hash}\n".encode())
    digest.update(content)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainHead:
    """The last link of a chain as a sink knows it."""

    replica: str
    seq: int = 0
    hash: str = GENESIS


def link(head: ChainHead, contents: Sequence[bytes]) -> list[tuple[int, str, str]]:
    """(seq, prev_hash, hash) for each content appended after `head`, in order."""
    out = []
    seq, prev = head.seq, head.hash
    for content in contents:
        seq += 1
        digest = link_hash(head.replica, seq, prev, content)
        out.append((seq, prev, digest))
        prev = digest
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Anchor:
    """A statement about a chain: `checkpoint` (its hash at `seq`) or `prune` (deleted up to `seq`)."""

    replica: str
    kind: str
    """`checkpoint` or `prune`."""
    seq: int
    hash: str
    """Hash of the event at `seq`."""
    time: float
    algorithm: str = ""
    """`hmac-sha256`, `ed25519`, or empty when unsigned."""
    key_id: str = ""
    """Fingerprint of the signing key (never the key)."""
    signature: str = ""

    def payload(self) -> bytes:
        """What is signed."""
        return canonical(
            {
                "replica": self.replica,
                "kind": self.kind,
                "seq": self.seq,
                "hash": self.hash,
                "time": self.time,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "kind": self.kind,
            "seq": self.seq,
            "hash": self.hash,
            "time": self.time,
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Anchor:
        return cls(
            replica=str(data["replica"]),
            kind=str(data["kind"]),
            seq=int(data["seq"]),
            hash=str(data["hash"]),
            time=float(data["time"]),
            algorithm=str(data.get("algorithm") or ""),
            key_id=str(data.get("key_id") or ""),
            signature=str(data.get("signature") or ""),
        )


class AnchorKey(Protocol):
    """Checks anchor signatures (see `signing.py`)."""

    key_id: str

    def verify(self, anchor: Anchor) -> bool: ...

    def knows(self, key_id: str) -> bool:
        """Whether an anchor signed under `key_id` is this key's to judge."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEvent:
    """An event as a sink holds it: chain fields plus the exact content bytes that were hashed."""

    replica: str
    seq: int
    prev_hash: str
    hash: str
    content: bytes
    mismatch: str = ""
    """Name of a stored (indexed) column that disagrees with the content, if any: an edit."""
    position: str = ""
    """Where it is stored (row id, file:line), for messages."""

    def event(self) -> AuditEvent:
        return event_from_content(
            orjson.loads(self.content),
            replica=self.replica,
            seq=self.seq,
            prev_hash=self.prev_hash,
            hash=self.hash,
        )

    def event_id(self) -> str:
        try:
            value = orjson.loads(self.content).get("event_id", "")
        except (orjson.JSONDecodeError, AttributeError):
            return ""
        return str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainReport:
    """The verdict on one chain."""

    replica: str
    ok: bool
    events: int
    first_seq: int = 0
    last_seq: int = 0
    checkpoints: int = 0
    """Signed checkpoints whose signature and hash were verified."""
    problem: str = ""
    bad_seq: int | None = None
    bad_event_id: str = ""
    bad_position: str = ""
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "replica": self.replica,
            "ok": self.ok,
            "events": self.events,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "checkpoints": self.checkpoints,
            "problem": self.problem,
            "bad_seq": self.bad_seq,
            "bad_event_id": self.bad_event_id,
            "bad_position": self.bad_position,
            "warnings": list(self.warnings),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessHead:
    """What one witness holds for a chain: its latest head, or None when it holds none."""

    name: str
    """The witness, for messages (`state`, `file /path`)."""
    head: Anchor | None


class ChainVerifier:
    """Checks one chain fed in stored order; remembers the first problem and the event it was found at."""

    def __init__(
        self,
        replica: str,
        *,
        anchor: Anchor | None = None,
        checkpoints: Sequence[Anchor] = (),
        head: ChainHead | None = None,
        key: AnchorKey | None = None,
        witnesses: Sequence[WitnessHead] = (),
        checkpoint_gap: int | None = None,
        allow_unsigned: bool = False,
    ) -> None:
        """Args:
        anchor: The latest prune anchor.
        checkpoints: The sink's checkpoints of this chain.
        head: The head the sink recorded.
        key: Checks signatures; with it, `checkpoint_gap` applies.
        witnesses: What each configured witness holds for this chain.
        checkpoint_gap: Most events a signed chain may hold between two signed checkpoints (and after the
            last one) before a missing checkpoint is a failure; None checks no gap.
        allow_unsigned: Accept an unsigned prune anchor or witness head, and chains without checkpoints.
        """
        self.replica = replica
        self._anchor = anchor
        self._checkpoints = sorted(checkpoints, key=lambda a: a.seq)
        self._head = head
        self._key = key
        self._witnesses = tuple(witnesses)
        self._gap = checkpoint_gap
        self._allow_unsigned = allow_unsigned
        self._expected = anchor.seq + 1 if anchor else 1
        self._prev = anchor.hash if anchor else GENESIS
        self._wanted = {c.seq for c in self._checkpoints} | {
            w.head.seq for w in self._witnesses if w.head is not None
        }
        self._seen: dict[int, str] = {}
        self._events = 0
        self._first = 0
        self._last = 0
        self._problem = ""
        self._where = ""
        """Where a problem not tied to one event was found (an anchor, a witness)."""
        self._bad: StoredEvent | None = None
        self._warnings: list[str] = []

    def feed(self, stored: StoredEvent) -> None:
        """Judge the next stored event."""
        if self._anchor is not None and not self._last and stored.seq <= self._anchor.seq:
            # A prune interrupted between writing its anchor and deleting (files): these were due to go.
            if not self._warnings or "pruned" not in self._warnings[-1]:
                self._warnings.append(f"events up to seq {self._anchor.seq} are pruned but still present")
            return
        self._events += 1
        self._first = self._first or stored.seq
        if self._problem:
            return
        problem = self._judge(stored)
        if problem:
            self._problem, self._bad = problem, stored
            return
        if stored.seq in self._wanted:
            self._seen[stored.seq] = stored.hash
        self._expected, self._prev, self._last = stored.seq + 1, stored.hash, stored.seq

    def _judge(self, stored: StoredEvent) -> str:
        if stored.mismatch:
            return f"stored column {stored.mismatch!r} differs from the hashed content (edited)"
        if stored.seq != self._expected:
            return (
                f"expected seq {self._expected} but found seq {stored.seq}: "
                "events were deleted, inserted or reordered here"
            )
        if stored.prev_hash != self._prev:
            return "prev_hash does not match the previous event's hash (inserted, or the chain was spliced)"
        if link_hash(stored.replica, stored.seq, stored.prev_hash, stored.content) != stored.hash:
            return "content does not match its hash (edited)"
        return ""

    def _fail(self, problem: str, where: str) -> None:
        if not self._problem:
            self._problem, self._where = problem, where

    def _signature_ok(self, anchor: Anchor, what: str) -> bool:
        if not anchor.signature:
            if self._key is not None:
                self._warnings.append(f"{what} at seq {anchor.seq} is unsigned")
            return False
        if self._key is None:
            self._warnings.append(f"{what} at seq {anchor.seq} is signed but no key was given to check it")
            return False
        if not self._key.knows(anchor.key_id):
            self._warnings.append(f"{what} at seq {anchor.seq} is signed by another key ({anchor.key_id})")
            return False
        if not self._key.verify(anchor):
            self._fail(f"{what} at seq {anchor.seq} has a bad signature (forged)", what)
            return False
        return True

    def finish(self) -> ChainReport:
        """The report, once every stored event was fed."""
        start = self._anchor.seq if self._anchor is not None else 0
        if self._anchor is not None:
            self._judge_prune(self._anchor)
        verified: list[int] = []
        for checkpoint in self._checkpoints:
            if checkpoint.seq <= start:
                continue  # its events were pruned since
            signed = self._signature_ok(checkpoint, "checkpoint")
            if self._bad is not None:
                continue  # the chain itself is already broken; anything later is noise
            if checkpoint.seq > self._last:
                self._fail(
                    f"chain ends at seq {self._last} but a checkpoint records seq {checkpoint.seq}: "
                    "events at the end were deleted",
                    f"checkpoint at seq {checkpoint.seq}",
                )
            elif self._seen.get(checkpoint.seq) != checkpoint.hash:
                self._fail(
                    f"the event at seq {checkpoint.seq} differs from its checkpoint: "
                    "the chain was rewritten at or before it",
                    f"checkpoint at seq {checkpoint.seq}",
                )
            elif signed:
                verified.append(checkpoint.seq)
        if self._head is not None and self._head.seq > self._last:
            self._fail(
                f"chain ends at seq {self._last} but its head records seq {self._head.seq}: "
                "events at the end were deleted",
                "recorded head",
            )
        if self._bad is None:
            for witness in self._witnesses:
                self._judge_witness(witness, start, verified)
            self._judge_gaps(start, verified)
        bad = self._bad
        return ChainReport(
            replica=self.replica,
            ok=not self._problem,
            events=self._events,
            first_seq=self._first,
            last_seq=self._last,
            checkpoints=len(verified),
            problem=self._problem,
            bad_seq=bad.seq if bad else None,
            bad_event_id=bad.event_id() if bad else "",
            bad_position=bad.position if bad else self._where,
            warnings=tuple(self._warnings),
        )

    def _judge_prune(self, anchor: Anchor) -> None:
        signed = self._signature_ok(anchor, "prune anchor")
        if not signed and not anchor.signature and not self._allow_unsigned:
            self._fail(
                f"the prune anchor at seq {anchor.seq} is unsigned: anyone could have written it to hide "
                f"events 1..{anchor.seq} (--allow-unsigned accepts it)",
                f"prune anchor at seq {anchor.seq}",
            )

    def _judge_witness(self, witness: WitnessHead, start: int, verified: list[int]) -> None:
        where = f"witness {witness.name}"
        head = witness.head
        if head is None:
            gap = self._gap if self._gap is not None else 0
            if verified or (self._key is not None and self._last - start > gap):
                self._fail(
                    f"{where} holds no head for chain {self.replica}, which has "
                    f"{len(verified)} signed checkpoints and events up to seq {self._last}: "
                    "the witness was deleted",
                    where,
                )
            return
        if head.signature:
            self._signature_ok(head, f"{where} head")
        elif self._key is not None and not self._allow_unsigned:
            self._fail(f"{where} holds an unsigned head at seq {head.seq} for a signed trail (forged)", where)
        if head.seq > self._last:
            self._fail(
                f"chain ends at seq {self._last} but {where} recorded seq {head.seq}: "
                f"events {self._last + 1}..{head.seq} at the end were deleted",
                where,
            )
        elif head.seq > start and self._seen.get(head.seq) != head.hash:
            self._fail(
                f"the event at seq {head.seq} differs from the head {where} recorded: "
                f"the chain was rewritten at or before seq {head.seq}",
                where,
            )
        if verified and verified[-1] > head.seq:
            self._fail(
                f"{where} holds seq {head.seq} but the chain has a signed checkpoint at seq {verified[-1]}: "
                "the witness was rolled back (an old head replayed)",
                where,
            )

    def _judge_gaps(self, start: int, verified: list[int]) -> None:
        if self._gap is None or self._key is None or self._allow_unsigned or not self._events:
            return
        previous = start
        for seq in [*verified, self._last]:
            if seq - previous > self._gap:
                self._fail(
                    f"no signed checkpoint covers seq {previous + 1}..{seq}, though one is expected at least "
                    f"every {self._gap} events: checkpoints were deleted or the chain was rewritten",
                    f"seq {previous + 1}..{seq}",
                )
                return
            previous = seq
