"""The approvals queue: in process, and shared across replicas through the state store (Redis)."""

from __future__ import annotations

import secrets

import anyio
import pytest

from bastion.pipeline.approvals import ApprovalQueue
from bastion.state.embedded import EmbeddedStateStore

pytestmark = pytest.mark.anyio


async def _ask(queue: ApprovalQueue, results: list[bool]) -> None:
    results.append(
        await queue.ask(
            question="run it?", principal="p", server="s", target="t", method="tools/call", session_id="sess"
        )
    )


async def _wait_pending(queue: ApprovalQueue):
    with anyio.fail_after(5):
        while not (items := await queue.pending()):
            await anyio.sleep(0.01)
    return items


async def test_a_pending_call_resumes_when_approved_and_is_denied_when_refused():
    queue = ApprovalQueue()
    for answer in (True, False):
        results: list[bool] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_ask, queue, results)
            [item] = await _wait_pending(queue)
            assert item.principal == "p" and item.target == "t"
            assert await queue.resolve(item.id, answer)
        assert results == [answer]
    assert not await queue.resolve("unknown", True)


async def test_nobody_answering_is_a_denial():
    queue = ApprovalQueue(timeout=0.2)
    results: list[bool] = []
    await _ask(queue, results)
    assert results == [False] and await queue.pending() == []


async def test_embedded_store_backed_queue_resolves_locally(tmp_path):
    async with EmbeddedStateStore(str(tmp_path / "s.db")) as store:
        queue = ApprovalQueue(store)
        results: list[bool] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_ask, queue, results)
            [item] = await _wait_pending(queue)
            assert await queue.resolve(item.id, True)
            assert not await queue.resolve(item.id, False)  # the first answer wins
        assert results == [True]


@pytest.mark.integration
async def test_an_approval_given_on_one_replica_releases_the_call_held_on_another():
    from bastion.state.redis_store import RedisStateStore

    prefix = f"test-{secrets.token_hex(4)}:"
    async with (
        RedisStateStore("redis://127.0.0.1:6379/0", key_prefix=prefix) as one,
        RedisStateStore("redis://127.0.0.1:6379/0", key_prefix=prefix) as two,
    ):
        replica_a, replica_b = ApprovalQueue(one), ApprovalQueue(two)
        results: list[bool] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_ask, replica_a, results)
            [item] = await _wait_pending(replica_b)
            assert await replica_b.resolve(item.id, False)
        assert results == [False]
