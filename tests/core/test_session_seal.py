"""Sealed session ids: any replica sharing the secret can rebuild a session; nobody else can."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from bastion.auth.principal import Principal
from bastion.config import parse_config
from bastion.core.gateway import Gateway
from bastion.core.sealing import SealedState, SessionSealer
from tests.core.test_session_raw import Collect, init

pytestmark = pytest.mark.anyio

STATE = SealedState(
    principal="alice",
    roles=("reader",),
    method="api_key",
    protocol_version="2025-11-25",
    client_capabilities={"sampling": {}},
    client_name="c",
    client_version="1",
    created=time.time(),
)


def test_sealed_id_opens_with_the_same_secret_only():
    sealed = SessionSealer("s" * 32).seal(STATE)
    assert SessionSealer("s" * 32).open(sealed) == STATE
    assert SessionSealer("t" * 32).open(sealed) is None
    assert "alice" not in sealed and "reader" not in sealed


def test_altered_forged_or_expired_ids_open_to_nothing():
    sealer = SessionSealer("k" * 32, max_age_seconds=60)
    sealed = sealer.seal(STATE)
    tampered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    assert sealer.open(tampered) is None
    assert sealer.open("s1.not-base64!!") is None
    assert sealer.open("random-session-id") is None
    old = replace(STATE, created=time.time() - 3600)
    assert sealer.open(sealer.seal(old)) is None


async def test_a_session_created_on_one_replica_is_served_by_another():
    config = {"servers": {}, "cluster": {"session_secret": "shared-secret-of-the-cluster"}}
    one, two = Gateway(parse_config(config)), Gateway(parse_config(config))
    alice = Principal(name="alice", method="api_key")
    out = Collect()
    session = await one.open_session(transport="streamable-http", outbound=out, principal=alice)
    await session.handle(init())
    await out.reply(1)
    sealed_id = session.session_id
    assert sealed_id.startswith("s1.") and one.get_session(sealed_id) is session
    assert two.get_session(sealed_id) is None
    out2 = Collect()
    restored = await two.restore_session(
        sealed_id, transport="streamable-http", outbound=out2, principal=alice
    )
    assert restored is not None and restored.info.protocol_version == "2025-11-25"
    await restored.handle({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert (await out2.reply(2))["result"] == {"tools": []}
    mallory = Principal(name="mallory", method="api_key")
    assert (
        await two.restore_session(sealed_id, transport="streamable-http", outbound=out2, principal=mallory)
        is None
    )
