"""Cost of the guard stage on large tool results: `GuardStage.on_response` on a 64 KB result, with the built-in
detectors, inline versus a hop to a worker thread.

Usage: PYTHONPATH=src .venv/bin/python bench/guard_stage.py [--kb 64] [--rounds 300]
Prints the median and 95th percentile in milliseconds for each case.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bastion.auth.principal import ANONYMOUS
from bastion.guard.config import GuardrailsConfig
from bastion.guard.engine import Guard
from bastion.pipeline.exchange import Exchange, SessionInfo
from bastion.pipeline.stages.guard import GuardStage

WORDS = (
    "the gateway forwards each request to the upstream server and records the decision for audit while "
    "the client waits for a reply def main return value list dict config server tool result error id"
).split()


def prose(chars: int, seed: int) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        line = " ".join(rng.choice(WORDS) for _ in range(12)) + ".\n"
        out.append(line)
        size += len(line)
    return "".join(out)[:chars]


def payloads(kb: int) -> dict[str, dict[str, Any]]:
    chars = kb * 1024
    one = prose(chars, 1)
    with_findings = one[: chars // 2] + " contact bob.jones@contoso.com " + one[chars // 2 + 30 :]
    return {
        f"{kb} KB clean, one text block": {"content": [{"type": "text", "text": one}], "isError": False},
        f"{kb} KB clean, 64 blocks": {
            "content": [{"type": "text", "text": prose(chars // 64, i)} for i in range(64)],
            "isError": False,
        },
        f"{kb} KB with an e-mail (flag)": {
            "content": [{"type": "text", "text": with_findings}],
            "isError": False,
        },
    }


async def measure(label: str, run: Callable[[], Awaitable[Any]], rounds: int) -> None:
    for _ in range(10):
        await run()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    p95 = samples[int(len(samples) * 0.95) - 1]
    print(f"{label:<58} median {statistics.median(samples):7.3f} ms   p95 {p95:7.3f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kb", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    started = time.perf_counter()
    guard = Guard(GuardrailsConfig())
    print(f"guard compiled in {time.perf_counter() - started:.1f}s, backend {guard.backend}")
    stage = GuardStage(guard)
    session = SessionInfo(session_id="bench", transport="memory", principal=ANONYMOUS)
    for label, result in payloads(args.kb).items():

        def exchange(result: dict[str, Any] = result) -> Exchange:
            ex = Exchange(session=session, method="tools/call", params={"name": "docs__read"}, server="docs")
            ex.target, ex.result = "read", result
            return ex

        async def inline(result: dict[str, Any] = result) -> Any:
            return await stage.on_response(exchange(result))

        async def bare(result: dict[str, Any] = result) -> Any:
            return guard.inspect("response", result, server="docs", tool="read")

        async def threaded(result: dict[str, Any] = result) -> Any:
            return await asyncio.to_thread(guard.inspect, "response", result, server="docs", tool="read")

        await measure(f"{label}: stage inline", inline, args.rounds)
        await measure(f"{label}: Guard.inspect alone", bare, args.rounds)
        await measure(f"{label}: Guard.inspect in a worker thread", threaded, args.rounds)
    off = GuardStage(Guard(GuardrailsConfig(enabled=False)))
    await measure("guardrails disabled: stage (skips)", lambda: off.on_response(exchange()), args.rounds)


if __name__ == "__main__":
    asyncio.run(main())
