"""The same behaviour tests run against the embedded store and (marked integration) the Redis store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from bastion.state import EmbeddedStateStore, StateConfig, StateStore, open_state_store
from bastion.state.redis_store import RedisStateStore

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    if request.param == "embedded":
        async with EmbeddedStateStore(tmp_path / "state.db") as s:
            yield s
        return
    prefix = f"bastion-test-{uuid.uuid4().hex}:"
    async with RedisStateStore(REDIS_URL, key_prefix=prefix) as s:
        yield s
        keys = [k async for k in s._redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await s._redis.delete(*keys)


async def test_a_value_can_be_set_read_and_deleted(store: StateStore) -> None:
    assert await store.get("a") is None
    assert await store.set("a", b"1")
    assert await store.get("a") == b"1"
    assert await store.delete("a")
    assert not await store.delete("a")
    assert await store.get("a") is None


async def test_set_only_if_absent_refuses_the_second_writer(store: StateStore) -> None:
    assert await store.set("once", b"first", only_if_absent=True)
    assert not await store.set("once", b"second", only_if_absent=True)
    assert await store.get("once") == b"first"


async def test_a_value_with_a_tiny_ttl_is_gone_after_it(store: StateStore) -> None:
    await store.set("short", b"x", ttl=0.001)
    await store.set("long", b"y", ttl=60)
    with anyio.fail_after(5):
        while await store.get("short") is not None:
            await anyio.sleep(0.005)
    assert await store.get("long") == b"y"


async def test_a_token_bucket_allows_capacity_then_says_when_to_retry(store: StateStore) -> None:
    results = [await store.take_tokens("b", capacity=3, refill_per_second=0.5) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert 1.5 < results[3].retry_after <= 2.0
    assert results[3].remaining < 1


async def test_token_buckets_are_independent_per_key(store: StateStore) -> None:
    assert (await store.take_tokens("x", capacity=1, refill_per_second=0.01)).allowed
    assert not (await store.take_tokens("x", capacity=1, refill_per_second=0.01)).allowed
    assert (await store.take_tokens("y", capacity=1, refill_per_second=0.01)).allowed


async def test_leases_cap_concurrency_and_release_frees_a_slot(store: StateStore) -> None:
    first = await store.acquire_lease("c", limit=2, ttl=30)
    second = await store.acquire_lease("c", limit=2, ttl=30)
    assert first and second and first != second
    assert await store.acquire_lease("c", limit=2, ttl=30) is None
    await store.release_lease("c", first)
    await store.release_lease("c", first)  # double release is harmless
    assert await store.acquire_lease("c", limit=2, ttl=30) is not None
    assert await store.acquire_lease("c", limit=2, ttl=30) is None


async def test_an_expired_lease_no_longer_holds_its_slot(store: StateStore) -> None:
    assert await store.acquire_lease("d", limit=1, ttl=0.001) is not None
    with anyio.fail_after(5):
        while await store.acquire_lease("d", limit=1, ttl=30) is None:
            await anyio.sleep(0.005)


async def test_records_round_trip_list_sorted_and_delete(store: StateStore) -> None:
    await store.put_record("keys", "b", {"principal": "bob", "roles": ["r"]})
    await store.put_record("keys", "a", {"principal": "alice"})
    await store.put_record("other", "a", {"x": 1})
    assert await store.get_record("keys", "a") == {"principal": "alice"}
    assert await store.get_record("keys", "zzz") is None
    assert [i for i, _ in await store.list_records("keys")] == ["a", "b"]
    await store.put_record("keys", "a", {"principal": "alice", "revoked": True})
    assert (await store.get_record("keys", "a")) == {"principal": "alice", "revoked": True}
    assert await store.delete_record("keys", "a")
    assert not await store.delete_record("keys", "a")
    assert [i for i, _ in await store.list_records("keys")] == ["b"]
    assert await store.get_record("other", "a") == {"x": 1}


async def test_embedded_records_survive_a_restart(tmp_path: Path) -> None:
    async with EmbeddedStateStore(tmp_path / "s.db") as s:
        await s.put_record("keys", "k1", {"principal": "p"})
    async with EmbeddedStateStore(tmp_path / "s.db") as s:
        assert await s.get_record("keys", "k1") == {"principal": "p"}


def test_state_config_builds_the_backend_it_names(tmp_path: Path) -> None:
    assert isinstance(open_state_store(StateConfig(path=str(tmp_path / "x.db"))), EmbeddedStateStore)
    store = open_state_store(StateConfig(backend="redis", url=REDIS_URL))
    assert isinstance(store, RedisStateStore)


def test_state_config_rejects_redis_without_url() -> None:
    with pytest.raises(ValueError, match="needs `url`"):
        StateConfig(backend="redis")


async def test_embedded_buckets_refill_with_the_injected_clock() -> None:
    now = [100.0]
    async with EmbeddedStateStore(":memory:", clock=lambda: now[0]) as s:
        assert (await s.take_tokens("k", capacity=1, refill_per_second=1)).allowed
        denied = await s.take_tokens("k", capacity=1, refill_per_second=1)
        assert not denied.allowed and denied.retry_after == 1.0
        now[0] += 1.0
        assert (await s.take_tokens("k", capacity=1, refill_per_second=1)).allowed


@pytest.mark.integration
async def test_two_redis_clients_share_one_bucket_and_never_overspend() -> None:
    prefix = f"bastion-test-{uuid.uuid4().hex}:"
    async with (
        RedisStateStore(REDIS_URL, key_prefix=prefix) as a,
        RedisStateStore(REDIS_URL, key_prefix=prefix) as b,
    ):
        allowed = 0

        async def take(store: RedisStateStore) -> None:
            nonlocal allowed
            if (await store.take_tokens("shared", capacity=10, refill_per_second=0.001)).allowed:
                allowed += 1

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for n in range(40):
                    tg.start_soon(take, a if n % 2 else b)
        assert allowed == 10
        keys = [k async for k in a._redis.scan_iter(match=f"{prefix}*")]
        await a._redis.delete(*keys)


async def test_replace_record_is_a_compare_and_set(store: StateStore) -> None:
    assert await store.replace_record("pins", "a/b", {"v": 1}, expected=None)
    assert not await store.replace_record("pins", "a/b", {"v": 9}, expected=None)  # it exists now
    assert not await store.replace_record("pins", "a/b", {"v": 9}, expected={"v": 0})  # stale read
    assert await store.replace_record("pins", "a/b", {"v": 2, "w": [1.5, "x"]}, expected={"v": 1})
    assert await store.replace_record("pins", "a/b", {"v": 3}, expected={"w": [1.5, "x"], "v": 2})
    assert await store.get_record("pins", "a/b") == {"v": 3}
    assert [i for i, _ in await store.list_records("pins")] == ["a/b"]


async def test_concurrent_replacements_of_one_record_lose_no_update(store: StateStore) -> None:
    await store.put_record("counter", "c", {"n": 0})

    async def bump() -> None:
        while True:
            current = await store.get_record("counter", "c")
            assert current is not None
            if await store.replace_record("counter", "c", {"n": current["n"] + 1}, expected=current):
                return

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(bump)
    assert await store.get_record("counter", "c") == {"n": 20}


async def test_members_expire_one_by_one_and_are_counted(store: StateStore) -> None:
    await store.put_members("sessions", {"s1": b"r1", "s2": b"r2"}, ttl=60)
    await store.put_members("sessions", {"gone": b"r1"}, ttl=0.001)
    assert await store.get_member("sessions", "s1") == b"r1"
    with anyio.fail_after(5):
        while await store.get_member("sessions", "gone") is not None:
            await anyio.sleep(0.005)
    assert await store.count_members("sessions") == 2
    assert await store.list_members("sessions") == {"s1": b"r1", "s2": b"r2"}
    await store.put_members("sessions", {"s1": b"r3"}, ttl=60)  # a refresh may change the value
    await store.remove_members("sessions", ["s2", "unknown"])
    assert await store.list_members("sessions") == {"s1": b"r3"}
    assert await store.count_members("empty") == 0 and await store.get_member("empty", "x") is None


async def test_record_writes_and_published_events_reach_subscribers(store: StateStore) -> None:
    subscription = await store.subscribe()
    try:
        await store.put_record("tool-pins", "calc/add", {"hash": "h"})
        await store.replace_record("tool-pins", "calc/add", {"hash": "i"}, expected={"hash": "h"})
        await store.delete_record("tool-pins", "calc/add")
        await store.publish("policy", {"hash": "p1"})
        seen = []
        with anyio.fail_after(5):
            while len(seen) < 4:
                event = await subscription.receive(1.0)
                if event is not None:
                    seen.append(event)
        assert [(e.topic, e.data) for e in seen] == [
            ("record", {"namespace": "tool-pins", "id": "calc/add"}),
            ("record", {"namespace": "tool-pins", "id": "calc/add"}),
            ("record", {"namespace": "tool-pins", "id": "calc/add"}),
            ("policy", {"hash": "p1"}),
        ]
        assert {e.origin for e in seen} == {store.origin}
        assert await subscription.receive(0.01) is None
    finally:
        await subscription.aclose()


@pytest.mark.integration
async def test_an_event_published_by_one_redis_client_reaches_another() -> None:
    prefix = f"bastion-test-{uuid.uuid4().hex}:"
    async with (
        RedisStateStore(REDIS_URL, key_prefix=prefix) as a,
        RedisStateStore(REDIS_URL, key_prefix=prefix) as b,
        RedisStateStore(REDIS_URL, key_prefix=f"{prefix}other:") as stranger,
    ):
        subscription = await b.subscribe()
        try:
            await stranger.publish("policy", {"hash": "not ours"})
            await a.put_record("api_keys", "k1", {"principal": "p"})
            with anyio.fail_after(5):
                event = await subscription.receive(5.0)
            assert event is not None and event.origin == a.origin != b.origin
            assert (event.topic, event.data) == ("record", {"namespace": "api_keys", "id": "k1"})
        finally:
            await subscription.aclose()
            keys = [k async for k in a._redis.scan_iter(match=f"{prefix}*")]
            await a._redis.delete(*keys)


@pytest.mark.integration
async def test_two_redis_clients_never_hold_more_leases_than_the_limit() -> None:
    prefix = f"bastion-test-{uuid.uuid4().hex}:"
    async with (
        RedisStateStore(REDIS_URL, key_prefix=prefix) as a,
        RedisStateStore(REDIS_URL, key_prefix=prefix) as b,
    ):
        held: list[str] = []

        async def acquire(store: RedisStateStore) -> None:
            lease = await store.acquire_lease("slots", limit=5, ttl=30)
            if lease is not None:
                held.append(lease)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for n in range(30):
                    tg.start_soon(acquire, a if n % 2 else b)
        assert len(held) == 5
        await b.release_lease("slots", held[0])  # released by another replica than the one that took it
        assert await a.acquire_lease("slots", limit=5, ttl=30) is not None
        assert await b.acquire_lease("slots", limit=5, ttl=30) is None
        keys = [k async for k in a._redis.scan_iter(match=f"{prefix}*")]
        await a._redis.delete(*keys)


def test_the_state_store_is_exactly_its_narrow_seams_plus_its_lifecycle():
    from bastion.state import base

    def methods(protocol: type) -> set[str]:
        return {
            name for name in vars(protocol) if not name.startswith("_") or name in ("__aenter__", "__aexit__")
        }

    narrow = [
        base.KeyValueStore,
        base.BucketStore,
        base.LeaseStore,
        base.RecordStore,
        base.MemberStore,
        base.PubSub,
    ]
    seen: set[str] = set()
    for protocol in narrow:
        assert not methods(protocol) & seen, protocol  # every operation belongs to one seam
        seen |= methods(protocol)
    assert methods(base.StateStore) == {"aclose", "__aenter__", "__aexit__"}
    assert all(protocol in base.StateStore.__mro__ for protocol in narrow)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_listener_cancelled_as_an_event_arrives_stops(store: StateStore) -> None:
    """The cluster listener loops on `receive`; a cancellation that lands in the same loop turn as an event must
    end it (Python 3.11's `asyncio.wait_for` returned the event and lost the cancellation: shutdown hung)."""
    subscription = await store.subscribe()

    async def listen() -> None:
        while True:
            await subscription.receive(0.5)

    task = asyncio.create_task(listen())
    await asyncio.sleep(0.05)
    await store.publish("test", {"n": 1})
    await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=3)
    assert done and task.cancelled()
    await subscription.aclose()
