"""Two replicas in one process, sharing one Redis: the session registry, terminated ids, and changes heard at once.

Each "replica" is a real `Gateway` with its own `RedisStateStore` and `ClusterMember`; they meet only in Redis, as
separate processes would. The slow polls (tool pins) are switched off, so what is released is released by events.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from bastion.auth.apikeys import ApiKeyStore
from bastion.auth.principal import Principal
from bastion.cluster.member import RELOAD_TOPIC, ClusterMember, policy_hash
from bastion.cluster.registry import SessionRegistry
from bastion.config import parse_config
from bastion.core.gateway import Gateway
from bastion.core.session import DownstreamSession
from bastion.guard import screen as screen_module
from bastion.guard.pins import ToolPins
from bastion.guard.screen import ToolScreen
from bastion.pipeline.approvals import ApprovalQueue
from bastion.policy.holder import PolicyHolder
from bastion.state.redis_store import RedisStateStore
from tests.cluster.services import REDIS_URL, redis_prefix, redis_problem
from tests.core.test_session_raw import Collect, init
from tests.guard.stub_detectors import stub_guard
from tests.servers import shady

pytestmark = [pytest.mark.anyio, pytest.mark.cluster, pytest.mark.integration]

ALICE = Principal(name="alice", roles=frozenset({"user"}), method="api_key", key_id="0123456789abcdef")
MALLORY = Principal(name="mallory", method="api_key")
WEATHER_V1 = {"name": "weather", "description": shady.WEATHER_V1, "inputSchema": {"type": "object"}}
WEATHER_V2 = {**WEATHER_V1, "description": shady.WEATHER_V2}


@pytest.fixture(autouse=True)
def _services() -> None:
    if (problem := redis_problem()) is not None:
        pytest.fail(problem)  # `make test` sets these up; a missing one is a failure, not a pass


@dataclass
class Node:
    """One replica: its gateway, store and cluster member."""

    gateway: Gateway
    store: RedisStateStore
    member: ClusterMember


def policy_document(allowed: list[str]) -> dict[str, Any]:
    return {"policy": {"default": "deny", "roles": {"user": {"rules": [{"servers": allowed}]}}}}


@contextlib.asynccontextmanager
async def replicas(
    count: int = 2,
    *,
    secret: str | None = "in-process-cluster-secret",
    policies: list[Path] | None = None,
    screens: bool = False,
) -> AsyncIterator[list[Node]]:
    """`count` started gateways sharing one Redis prefix."""
    cluster = {"session_secret": secret} if secret else {}
    with redis_prefix() as prefix:
        async with contextlib.AsyncExitStack() as stack:
            nodes = []
            for n in range(count):
                config = parse_config({"servers": {}, "cluster": {"replica_id": f"r{n + 1}", **cluster}})
                store = await stack.enter_async_context(RedisStateStore(REDIS_URL, key_prefix=prefix))
                gateway = Gateway(config)
                holder = PolicyHolder.from_file(policies[n]) if policies else None
                screen = ToolScreen(stub_guard(), ToolPins(store)) if screens else None
                registry = SessionRegistry(store, f"r{n + 1}", revoke_seconds=60)
                member = ClusterMember(gateway, store, registry, policy=holder, screen=screen)
                gateway.use(member.contribution())
                await gateway.start()
                stack.push_async_callback(gateway.aclose)
                nodes.append(Node(gateway=gateway, store=store, member=member))
            with anyio.fail_after(10):
                for node in nodes:
                    await node.member.listening.wait()
            yield nodes


async def handshake(node: Node, principal: Principal = ALICE) -> DownstreamSession:
    out = Collect()
    session = await node.gateway.open_session(transport="streamable-http", outbound=out, principal=principal)
    await session.handle(init())
    await out.reply(1)
    return session


async def eventually(check: Callable[[], Any], seconds: float = 10) -> None:
    """Wait until `check()` (sync or async) is truthy: replicas meet only through Redis, so there is no event here."""
    with anyio.fail_after(seconds):
        while True:
            result = check()
            if hasattr(result, "__await__"):
                result = await result
            if result:
                return
            await anyio.sleep(0.02)


async def test_sessions_are_registered_counted_and_forgotten_across_replicas() -> None:
    async with replicas() as (one, two):
        first = await handshake(one)
        second = await handshake(two)
        registry = one.member.registry
        await eventually(lambda: _equals(registry.count(), 2))
        entry = await registry.lookup(second.session_id)
        assert entry is not None and (entry.replica, entry.principal, entry.alive) == ("r2", "alice", True)
        await first.aclose()
        await eventually(lambda: _equals(registry.count(), 1))
        await one.member.refresh()
        assert one.member.snapshot() == {"replica": "r1", "replicas": 2, "sessions": 1, "policy": ""}
        assert one.gateway.health()["cluster"]["sessions"] == 1


async def test_a_terminated_sealed_id_is_never_restored_and_other_copies_close() -> None:
    async with replicas(3) as (one, two, three):
        session = await handshake(one)
        sealed = session.session_id
        copy = await two.gateway.restore_session(
            sealed, transport="streamable-http", outbound=Collect(), principal=ALICE
        )
        assert copy is not None and two.gateway.get_session(sealed) is copy
        await session.aclose()
        await one.member.registry.revoke(sealed, ALICE.name)  # what a DELETE does
        await eventually(lambda: two.gateway.get_session(sealed) is None)
        assert copy.closed
        restored = await three.gateway.restore_session(
            sealed, transport="streamable-http", outbound=Collect(), principal=ALICE
        )
        assert restored is None
        registry = three.member.registry
        assert await registry.explain(sealed, ALICE.name) == {"session": "terminated"}
        assert await registry.explain(sealed, MALLORY.name) is None  # no oracle for anyone else


async def test_a_session_of_a_dead_replica_is_explained_as_gone_to_its_owner_only() -> None:
    async with replicas(secret=None) as (one, two):
        session = await handshake(one)
        await eventually(lambda: one.member.registry.lookup(session.session_id))
        explain = two.member.registry.explain
        assert await explain(session.session_id, ALICE.name) == {"session": "held_elsewhere"}
        await one.member.stop()  # like a crash, as far as the registry is concerned: no more heartbeats
        assert await explain(session.session_id, ALICE.name) == {"session": "replica_gone"}
        assert await explain(session.session_id, MALLORY.name) is None
        assert await explain("never-issued", ALICE.name) is None


async def test_a_tool_change_approved_on_one_replica_is_released_on_the_other_by_the_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(screen_module, "RELEASE_POLL_SECONDS", 3600.0)  # only an event can release it in time
    async with replicas(screens=True) as (one, two):
        screens = [node.member.screen for node in (one, two)]
        assert screens[0] is not None and screens[1] is not None
        for screen in screens:
            assert [t["name"] for t in await screen("shady", [WEATHER_V1])] == ["weather"]
        for screen in screens:  # the rug pull, seen by both replicas' own upstream processes
            assert await screen("shady", [WEATHER_V2]) == []
            assert ("shady", "weather") in screen.held
        pins = ToolPins(one.store)
        pin = await pins.get("shady", "weather")
        assert pin is not None and pin.pending_hash
        assert await pins.approve("shady", "weather", by="ops", pending_hash=pin.pending_hash) is not None
        await eventually(lambda: ("shady", "weather") not in screens[1].held, seconds=5)
        assert [t["name"] for t in await screens[1]("shady", [WEATHER_V2])] == ["weather"]


async def test_a_policy_reloaded_on_one_replica_is_reloaded_by_the_others(tmp_path: Path) -> None:
    files = [tmp_path / "a.yaml", tmp_path / "b.yaml"]
    for path in files:
        path.write_text(yaml.safe_dump(policy_document(["calc"])))
    async with replicas(policies=files) as (one, two):
        assert one.member.policy is not None and two.member.policy is not None
        before = policy_hash(two.member.policy)
        for path in files:  # the new policy reaches both hosts (config management); only one reloads itself
            path.write_text(yaml.safe_dump(policy_document(["calc", "time"])))
        assert one.member.policy.reload()
        after = policy_hash(one.member.policy)
        assert after != before
        await eventually(lambda: policy_hash(two.member.policy) == after, seconds=5)
        for path in files:
            path.write_text(yaml.safe_dump(policy_document(["time"])))
        await one.store.publish(RELOAD_TOPIC, {})  # `bastion cluster reload`
        await eventually(
            lambda: policy_hash(one.member.policy) == policy_hash(two.member.policy) != after, seconds=5
        )
        statuses = await one.member.registry.replicas()
        await eventually(lambda: _replicas_agree(one.member.registry, policy_hash(one.member.policy)))
        assert set(statuses) == {"r1", "r2"}


async def test_a_revoked_api_key_ends_its_sessions_on_every_replica() -> None:
    async with replicas() as (one, two):
        keys = ApiKeyStore(one.store)
        key, info = await keys.create("alice", ["user"])
        principal = await ApiKeyStore(two.store).verify(key)
        session = await handshake(two, principal)
        other = await handshake(two, MALLORY)
        assert await keys.revoke(info.key_id)
        await eventually(lambda: session.closed, seconds=5)
        assert not other.closed


async def test_a_call_held_for_approval_on_one_replica_is_approved_through_another() -> None:
    async with replicas() as (one, two):
        asking, answering = ApprovalQueue(one.store, timeout=30), ApprovalQueue(two.store, timeout=30)
        outcome: list[bool] = []

        async def ask() -> None:
            outcome.append(
                await asking.ask(
                    question="send the e-mail?",
                    principal="alice",
                    server="mail",
                    target="send",
                    method="tools/call",
                    session_id="s" * 20,
                )
            )

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await eventually(lambda: answering.pending())
            (pending,) = await answering.pending()
            assert (pending.principal, pending.target) == ("alice", "send")
            assert await answering.resolve(pending.id, True)
            assert not await one.gateway.approvals.resolve(pending.id, False)  # the first answer wins
        assert outcome == [True]
        assert await answering.pending() == []


async def _equals(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _replicas_agree(registry: SessionRegistry, expected: str) -> bool:
    statuses = await registry.replicas()
    return set(statuses) == {"r1", "r2"} and all(s.get("policy") == expected for s in statuses.values())
