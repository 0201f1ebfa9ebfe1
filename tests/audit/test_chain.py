"""Tamper evidence on every sink: edited, deleted, inserted and reordered events are named by `verify`."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.audit.chain import GENESIS, Anchor, ChainVerifier, StoredEvent, link_hash
from bastion.audit.event import canonical
from bastion.audit.signing import Ed25519Key, HmacKey
from bastion.audit.sinks import Sink
from bastion.audit.verify import verify
from tests.audit.conftest import write_events

pytestmark = pytest.mark.anyio


async def test_an_untouched_trail_verifies_with_one_chain_per_replica(
    sink_and_tamper: tuple[Sink, Any],
) -> None:
    sink, _ = sink_and_tamper
    await write_events(sink, 20, replica="gw-a")
    await write_events(sink, 9, replica="gw-b", start=100)
    await write_events(sink, 5, replica="gw-a", start=200)
    report = await verify(sink)
    assert report.ok, report.to_dict()
    assert [(c.replica, c.events, c.first_seq, c.last_seq) for c in report.chains] == [
        ("gw-a", 25, 1, 25),
        ("gw-b", 9, 1, 9),
    ]


async def test_an_edited_event_is_named(sink_and_tamper: tuple[Sink, Any]) -> None:
    sink, tamper = sink_and_tamper
    ids = await write_events(sink, 20)
    await tamper.edit(8)
    (chain,) = (await verify(sink)).chains
    assert (chain.ok, chain.bad_seq, chain.bad_event_id) == (False, 8, ids[7])
    assert "edited" in chain.problem


async def test_an_edited_indexed_column_is_named(sink_and_tamper: tuple[Sink, Any]) -> None:
    sink, tamper = sink_and_tamper
    ids = await write_events(sink, 12)
    await tamper.edit_column(4)
    (chain,) = (await verify(sink)).chains
    assert (chain.ok, chain.bad_seq, chain.bad_event_id) == (False, 4, ids[3])


async def test_a_deleted_event_is_named_by_the_event_after_it(sink_and_tamper: tuple[Sink, Any]) -> None:
    sink, tamper = sink_and_tamper
    ids = await write_events(sink, 20)
    await tamper.delete(11)
    (chain,) = (await verify(sink)).chains
    assert (chain.ok, chain.bad_seq, chain.bad_event_id) == (False, 12, ids[11])
    assert "expected seq 11" in chain.problem


async def test_an_inserted_event_is_named(sink_and_tamper: tuple[Sink, Any]) -> None:
    sink, tamper = sink_and_tamper
    await write_events(sink, 20)
    await tamper.insert(6, forged_id="forged", rehash=False)
    (chain,) = (await verify(sink)).chains
    assert (chain.ok, chain.bad_seq, chain.bad_event_id) == (False, 6, "forged")


async def test_an_inserted_event_with_a_recomputed_hash_breaks_the_link_to_the_next(
    sink_and_tamper: tuple[Sink, Any],
) -> None:
    sink, tamper = sink_and_tamper
    ids = await write_events(sink, 20)
    await tamper.insert(6, forged_id="forged", rehash=True)
    (chain,) = (await verify(sink)).chains
    assert not chain.ok
    assert chain.bad_event_id == ids[5]  # the genuine event 6 no longer links to what precedes it


async def test_reordered_events_are_named(sink_and_tamper: tuple[Sink, Any]) -> None:
    sink, tamper = sink_and_tamper
    ids = await write_events(sink, 20)
    await tamper.swap(9)
    (chain,) = (await verify(sink)).chains
    assert (chain.ok, chain.bad_event_id) == (False, ids[9])  # event 10 now comes first


async def test_a_cut_tail_is_caught_by_the_recorded_head_or_a_signed_checkpoint(
    sink_and_tamper: tuple[Sink, Any],
) -> None:
    sink, tamper = sink_and_tamper
    key = HmacKey("k" * 32)
    await write_events(sink, 10)
    head = await sink.write("r1", [])
    await sink.write_anchor(
        key.sign(Anchor(replica="r1", kind="checkpoint", seq=head.seq, hash=head.hash, time=1.0))
    )
    assert (await verify(sink, key=key)).chains[0].checkpoints == 1
    await tamper.delete(10)
    (chain,) = (await verify(sink, key=key)).chains
    assert not chain.ok and "at the end were deleted" in chain.problem


async def test_pruning_leaves_a_signed_anchor_and_the_rest_still_verifies(
    sink_and_tamper: tuple[Sink, Any],
) -> None:
    sink, _ = sink_and_tamper
    key = Ed25519Key.from_private_pem(_ed25519_pem())
    for start in range(1, 60, 10):  # several writes, so JSON Lines rotates into several files
        await write_events(sink, 10, start=start)
    anchors = await sink.prune(1_700_000_000.0 + 30.5, key)
    assert [a.replica for a in anchors] == ["r1"] and key.verify(anchors[0])
    report = await verify(sink, key=key)
    assert report.ok, report.to_dict()
    (chain,) = report.chains
    assert chain.first_seq == anchors[0].seq + 1 and chain.last_seq == 60 and chain.first_seq > 1
    await write_events(sink, 3, start=500)
    assert (await verify(sink, key=key)).chains[0].last_seq == 63


async def test_a_forged_anchor_signature_fails_verification(sink_and_tamper: tuple[Sink, Any]) -> None:
    sink, _ = sink_and_tamper
    key = HmacKey("k" * 32)
    await write_events(sink, 5)
    head = await sink.write("r1", [])
    forged = Anchor(replica="r1", kind="checkpoint", seq=head.seq, hash=head.hash, time=1.0)
    await sink.write_anchor(HmacKey("another-key-of-32-bytes-length!!").sign(forged))
    await sink.write_anchor(
        Anchor(
            replica="r1",
            kind="checkpoint",
            seq=3,
            hash="0" * 64,
            time=1.0,
            algorithm="hmac-sha256",
            key_id=key.key_id,
            signature="00",
        )
    )
    (chain,) = (await verify(sink, key=key)).chains
    assert not chain.ok and "bad signature" in chain.problem
    assert any("another key" in w for w in chain.warnings)


def test_the_verifier_needs_no_storage_at_all() -> None:
    contents = [canonical({"event_id": f"e{i}", "n": i}) for i in range(3)]
    prev, stored = GENESIS, []
    for seq, content in enumerate(contents, 1):
        digest = link_hash("r", seq, prev, content)
        stored.append(StoredEvent(replica="r", seq=seq, prev_hash=prev, hash=digest, content=content))
        prev = digest
    verifier = ChainVerifier("r")
    for s in (stored[0], stored[2], stored[1]):
        verifier.feed(s)
    report = verifier.finish()
    assert (report.ok, report.bad_seq, report.bad_event_id, report.events) == (False, 3, "e2", 3)


def test_hmac_keys_need_16_bytes_and_never_expose_the_secret() -> None:
    key = HmacKey("s" * 16)
    assert "s" * 16 not in key.key_id
    anchor = key.sign(Anchor(replica="r", kind="prune", seq=1, hash="a" * 64, time=2.0))
    assert key.verify(anchor) and not HmacKey("t" * 16).verify(anchor)
    with pytest.raises(Exception, match="16 bytes"):
        HmacKey("short")


def _ed25519_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
