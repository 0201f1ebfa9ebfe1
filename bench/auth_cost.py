"""CPU of one API-key check (`ApiKeyStore.verify`) on a file-backed embedded state store, warm.

Why: every request with an API key is checked against the store (a revoked key is refused at the next request),
so this is a per-call cost of the full gateway. Prints process CPU (all threads) and wall time per call.

    .venv/bin/python bench/auth_cost.py [calls]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bastion.auth.apikeys import ApiKeyStore
from bastion.state import EmbeddedStateStore


async def _measure(calls: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        async with EmbeddedStateStore(Path(scratch) / "state.db") as store:
            keys = ApiKeyStore(store)
            key, _ = await keys.create("bench", ["bench"])
            for _ in range(200):
                await keys.verify(key)
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(calls):
                await keys.verify(key)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"ApiKeyStore.verify: {cpu / calls * 1e6:.1f} us CPU, {wall / calls * 1e6:.1f} us wall per call")


if __name__ == "__main__":
    asyncio.run(_measure(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
