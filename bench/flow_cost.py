"""Cost of flow taint tracking per tools/call: the flow stage off versus on, in front of an instant upstream.

Cases (one memory session each, 100-byte echo, no guardrails so only the flow stage differs):
- `off`: `policy.flow.enabled: false` (the stage is wired but returns at once);
- `on, clean session`: taint is read from the store on every call and found empty;
- `on, tainted session`: the session holds a private and an untrusted mark and the fingerprints of one private
  value; every call reads them, runs the CEL rule and scans its arguments for the fingerprints.
The store is the embedded one (in-process), or Redis with `--redis URL` (a random key prefix, removed after).

Run: .venv/bin/python bench/flow_cost.py [--calls 5000] [--rounds 3] [--redis redis://127.0.0.1:6379/0]
Prints the median microseconds per call over the rounds, and the difference to `off`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any

from bastion.config import parse_config
from bastion.core.gateway import Gateway
from bastion.pipeline.stages.flow import FlowStage
from bastion.policy.flow import TaintMark
from bastion.policy.holder import PolicyHolder
from bastion.policy.taint import TaintStore
from bastion.state import EmbeddedStateStore, StateStore
from micro_session import ECHO_CALL, InstantUpstream, initialized_session

RULE = {
    "id": "no-exfiltration",
    "when": 'session.tainted("private") && session.tainted("untrusted") && tool.labels.exists(l, l == "egress")',
}


def config(enabled: bool) -> Any:
    return parse_config(
        {
            "servers": {"up": {"transport": "stdio", "command": "x", "protocol": "legacy"}},
            "policy": {"default": "allow", "flow": {"enabled": enabled, "rules": [RULE]}},
        }
    )


async def one_case(store: StateStore, *, enabled: bool, tainted: bool, calls: int) -> float:
    cfg = config(enabled)
    assert cfg.policy is not None
    stage = FlowStage(PolicyHolder.from_config(cfg.policy), TaintStore(store, ttl=600), references={})
    gw = Gateway(cfg, stages=[stage, stage.capture], observers=[stage], transports={"up": InstantUpstream})
    await gw.start()
    try:
        call = await initialized_session(gw)
        (session_id,) = gw.sessions
        if tainted:
            marks = [
                TaintMark(kind="private", tool="crm__get", time=1.0, findings=("pii/email",), event="e1"),
                TaintMark(kind="untrusted", tool="web__fetch", time=2.0, event="e2"),
            ]
            await stage.taint.add(session_id, marks, ["carol.jones@contoso.example"])
        for _ in range(200):
            await call("tools/call", ECHO_CALL)
        started = time.perf_counter()
        for _ in range(calls):
            await call("tools/call", ECHO_CALL)
        return (time.perf_counter() - started) / calls * 1e6
    finally:
        await gw.aclose()


async def main(args: argparse.Namespace) -> None:
    cases = {"off": (False, False), "on, clean session": (True, False), "on, tainted session": (True, True)}
    results: dict[str, list[float]] = {name: [] for name in cases}
    prefix = f"bastion-bench-{uuid.uuid4().hex}:"
    for _ in range(args.rounds):
        for name, (enabled, tainted) in cases.items():
            store: StateStore
            if args.redis:
                from bastion.state.redis_store import RedisStateStore

                store = RedisStateStore(args.redis, key_prefix=prefix + uuid.uuid4().hex + ":")
            else:
                store = EmbeddedStateStore(":memory:")
            async with store:
                results[name].append(
                    await one_case(store, enabled=enabled, tainted=tainted, calls=args.calls)
                )
    if args.redis:
        from bastion.state.redis_store import RedisStateStore

        async with RedisStateStore(args.redis, key_prefix=prefix) as cleanup:
            keys = [k async for k in cleanup._redis.scan_iter(match=f"{prefix}*")]
            if keys:
                await cleanup._redis.delete(*keys)
    base = statistics.median(results["off"])
    where = f"redis {args.redis}" if args.redis else "embedded store"
    print(f"flow taint tracking, {args.calls} calls x {args.rounds} rounds, {where}: median us/call")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"  {name:<22} {median:8.1f} us/call   (+{median - base:.1f} us vs off)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default="", help="measure with a Redis store at this URL")
    asyncio.run(main(parser.parse_args()))
