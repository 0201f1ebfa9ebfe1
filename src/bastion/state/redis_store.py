"""`RedisStateStore`: the shared `StateStore` for several replicas, with Lua scripts for every atomic counter.

Rules:
- Every read-modify-write is one Lua script, so replicas never race (buckets, leases, set-if-absent).
- Time inside scripts comes from Redis `TIME`, so replicas with skewed clocks share one notion of "now".
- Every key carries `key_prefix`; records are JSON strings plus one index set per namespace for listing.
- Operations are bounded by `timeout_seconds`; a timeout raises and the calling stage fails closed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final, Self

import redis.asyncio as aioredis

from bastion.state.base import BucketResult

_TAKE_TOKENS: Final = """
local capacity = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or capacity
local ts = tonumber(b[2]) or now
tokens = math.min(capacity, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / rate * 1000) + 1000)
return {allowed, tostring(tokens), tostring(retry)}
"""
"""KEYS[1] bucket hash; ARGV capacity, refill per second, cost. Returns {allowed, remaining, retry_after}."""

_ACQUIRE: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 1000)
return 1
"""
"""KEYS[1] lease sorted set (score = expiry ms); ARGV limit, ttl ms, lease id. Returns 1 when acquired."""


class RedisStateStore:
    """The multi-replica `StateStore` on redis-py asyncio."""

    def __init__(self, url: str, *, key_prefix: str = "bastion:", timeout_seconds: float = 2.0) -> None:
        self._prefix = key_prefix
        self._redis: aioredis.Redis = aioredis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._take = self._redis.register_script(_TAKE_TOKENS)
        self._acquire = self._redis.register_script(_ACQUIRE)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._redis.aclose()

    def _key(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{key}"

    # -- key/value --------------------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(self._key("kv", key))
        if value is None:
            return None
        return value.encode() if isinstance(value, str) else bytes(value)

    async def set(
        self, key: str, value: bytes, *, ttl: float | None = None, only_if_absent: bool = False
    ) -> bool:
        px = None if ttl is None else max(1, int(ttl * 1000))
        done = await self._redis.set(self._key("kv", key), value, px=px, nx=only_if_absent)
        return bool(done)

    async def delete(self, key: str) -> bool:
        return bool(await self._redis.delete(self._key("kv", key)))

    # -- counters ---------------------------------------------------------------------------------------------

    async def take_tokens(
        self, key: str, *, capacity: float, refill_per_second: float, cost: float = 1.0
    ) -> BucketResult:
        raw = await self._take(keys=[self._key("bucket", key)], args=[capacity, refill_per_second, cost])
        allowed, remaining, retry = raw
        return BucketResult(allowed=int(allowed) == 1, remaining=float(remaining), retry_after=float(retry))

    async def acquire_lease(self, key: str, *, limit: int, ttl: float) -> str | None:
        lease = uuid.uuid4().hex
        ok = await self._acquire(keys=[self._key("lease", key)], args=[limit, max(1, int(ttl * 1000)), lease])
        return lease if int(ok) == 1 else None

    async def release_lease(self, key: str, lease: str) -> None:
        await self._redis.zrem(self._key("lease", key), lease)

    # -- durable records --------------------------------------------------------------------------------------

    async def put_record(self, namespace: str, record_id: str, record: Mapping[str, Any]) -> None:
        body = json.dumps(dict(record), sort_keys=True)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(f"rec:{namespace}", record_id), body)
            pipe.sadd(self._key("recidx", namespace), record_id)
            await pipe.execute()

    async def get_record(self, namespace: str, record_id: str) -> dict[str, Any] | None:
        body = await self._redis.get(self._key(f"rec:{namespace}", record_id))
        return None if body is None else _loads(body)

    async def list_records(self, namespace: str) -> list[tuple[str, dict[str, Any]]]:
        ids = sorted(_text(i) for i in await self._redis.smembers(self._key("recidx", namespace)))
        if not ids:
            return []
        bodies = await self._redis.mget([self._key(f"rec:{namespace}", i) for i in ids])
        return [(i, _loads(b)) for i, b in zip(ids, bodies, strict=True) if b is not None]

    async def delete_record(self, namespace: str, record_id: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(f"rec:{namespace}", record_id))
            pipe.srem(self._key("recidx", namespace), record_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _loads(body: Any) -> dict[str, Any]:
    value = json.loads(body)
    return value if isinstance(value, dict) else {}
