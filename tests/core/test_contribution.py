"""Contributions and the lifecycle: resources open in order before upstreams, close in reverse after them."""

from __future__ import annotations

import asyncio

import pytest

from bastion.core.contribution import Contribution, Resource
from bastion.core.gateway import Gateway
from bastion.core.tasks import BackgroundTasks
from bastion.pipeline.stage import BaseStage
from bastion.testing import memory_config

pytestmark = pytest.mark.anyio


def named(name: str) -> BaseStage:
    stage = BaseStage()
    stage.name = name
    return stage


def recording(log: list[str], name: str, *, fail: bool = False) -> Resource:
    async def open_() -> None:
        log.append(f"open {name}")

    async def close() -> None:
        log.append(f"close {name}")
        if fail:
            raise RuntimeError("close failed")

    return Resource(name=name, open=open_, close=close)


async def test_resources_open_in_order_and_close_in_reverse_even_when_one_close_fails() -> None:
    log: list[str] = []
    gateway = Gateway(memory_config([]))
    gateway.use(
        Contribution(resources=(recording(log, "store"),)),
        Contribution(resources=(recording(log, "audit", fail=True), recording(log, "watcher"))),
    )
    await gateway.start()
    await gateway.aclose()
    assert log == ["open store", "open audit", "open watcher", "close watcher", "close audit", "close store"]


async def test_stages_and_observers_keep_the_order_they_are_given_in() -> None:
    gateway = Gateway(memory_config([]), stages=[named("authenticate")])
    first, second = object(), object()
    gateway.use(
        Contribution(stages=(named("authorize"), named("guard")), observers=(first,)),  # type: ignore[arg-type]
        Contribution(observers=(second,)),  # type: ignore[arg-type]
    )
    assert [s.name for s in gateway.pipeline.stages] == ["authenticate", "authorize", "guard"]
    assert gateway.observers == [first, second]
    await gateway.aclose()


async def test_background_tasks_are_awaited_by_drain() -> None:
    tasks = BackgroundTasks()
    done = asyncio.Event()

    async def work() -> None:
        await asyncio.sleep(0)
        done.set()

    tasks.spawn(work())
    assert len(tasks) == 1
    await tasks.drain()
    assert done.is_set() and len(tasks) == 0
