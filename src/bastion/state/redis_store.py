"""`RedisStateStore`: the shared `StateStore` for several replicas, with Lua scripts for every atomic counter.

Rules:
- Every read-modify-write is one Lua script, so replicas never race (buckets, leases, set-if-absent).
- Time inside scripts comes from Redis `TIME`, so replicas with skewed clocks share one notion of "now".
- Every key carries `key_prefix`; records are JSON strings plus one index set per namespace for listing.
- Operations are bounded by `timeout_seconds`; a timeout raises and the calling stage fails closed.
- Record writes announce themselves on the pub/sub channel `<prefix>events` in the same transaction or script,
  so a CLI writing a record (an approved tool pin, a revoked key) is heard by every replica at once.
- Members are a sorted set (score = expiry in ms) plus a hash of values; expired ones are purged by the scripts.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self

import redis.asyncio as aioredis

from bastion.state.base import RECORD_TOPIC, BucketResult, StateEvent

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

_NOW_MS: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function purge(zkey, hkey)
  local gone = redis.call('ZRANGEBYSCORE', zkey, '-inf', now)
  for i = 1, #gone, 500 do
    redis.call('HDEL', hkey, unpack(gone, i, math.min(i + 499, #gone)))
  end
  if #gone > 0 then redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now) end
end
"""
"""Shared prologue of the member scripts: `now` in ms from Redis `TIME`, and `purge` of expired members."""

_PUT_MEMBERS: Final = (
    _NOW_MS
    + """
local expires = now + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], expires, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
purge(KEYS[1], KEYS[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) + 1000)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[1]) + 1000)
return 1
"""
)
"""KEYS[1] expiry zset, KEYS[2] value hash; ARGV ttl ms, then member, value pairs. Keys live as long as the
newest member, so an abandoned set disappears."""

_GET_MEMBER: Final = (
    _NOW_MS
    + """
local expires = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if expires == nil or expires <= now then return false end
return redis.call('HGET', KEYS[2], ARGV[1])
"""
)

_LIST_MEMBERS: Final = (
    _NOW_MS
    + """
purge(KEYS[1], KEYS[2])
if ARGV[1] == 'count' then return redis.call('ZCARD', KEYS[1]) end
return redis.call('HGETALL', KEYS[2])
"""
)
"""ARGV[1] `count` (a number) or `all` (a flat member, value list)."""

_REPLACE: Final = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
"""
"""KEYS[1] record, KEYS[2] namespace index; ARGV expect-present flag, expected body, new body, id, channel,
event. Bodies are compared byte for byte: every writer stores `json.dumps(..., sort_keys=True)`, which is stable
across a read and a re-serialisation."""


class RedisStateStore:
    """The multi-replica `StateStore` on redis-py asyncio."""

    def __init__(self, url: str, *, key_prefix: str = "bastion:", timeout_seconds: float = 2.0) -> None:
        self._prefix = key_prefix
        self._redis: aioredis.Redis = aioredis.from_url(
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._take = self._redis.register_script(_TAKE_TOKENS)
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._put_members = self._redis.register_script(_PUT_MEMBERS)
        self._get_member = self._redis.register_script(_GET_MEMBER)
        self._list_members = self._redis.register_script(_LIST_MEMBERS)
        self._replace = self._redis.register_script(_REPLACE)
        self.origin = uuid.uuid4().hex
        self.channel = f"{key_prefix}events"
        """The pub/sub channel of this deployment's events (one per key prefix)."""

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
            pipe.publish(self.channel, self._record_event(namespace, record_id))
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
            pipe.publish(self.channel, self._record_event(namespace, record_id))
            deleted, _, _ = await pipe.execute()
        return bool(deleted)

    async def replace_record(
        self,
        namespace: str,
        record_id: str,
        record: Mapping[str, Any],
        *,
        expected: Mapping[str, Any] | None,
    ) -> bool:
        body = json.dumps(dict(record), sort_keys=True)
        before = "" if expected is None else json.dumps(dict(expected), sort_keys=True)
        done = await self._replace(
            keys=[self._key(f"rec:{namespace}", record_id), self._key("recidx", namespace)],
            args=[
                "0" if expected is None else "1",
                before,
                body,
                record_id,
                self.channel,
                self._record_event(namespace, record_id),
            ],
        )
        return int(done) == 1

    def _record_event(self, namespace: str, record_id: str) -> bytes:
        return _encode(
            StateEvent(topic=RECORD_TOPIC, data={"namespace": namespace, "id": record_id}, origin=self.origin)
        )

    # -- members ----------------------------------------------------------------------------------------------

    def _member_keys(self, key: str) -> list[str]:
        return [self._key("mexp", key), self._key("mval", key)]

    async def put_members(self, key: str, members: Mapping[str, bytes], *, ttl: float) -> None:
        items = list(members.items())
        for start in range(0, max(1, len(items)), _MEMBERS_PER_CALL):
            chunk = items[start : start + _MEMBERS_PER_CALL]
            args: list[Any] = [max(1, int(ttl * 1000))]
            for member, value in chunk:
                args += [member, value]
            await self._put_members(keys=self._member_keys(key), args=args)

    async def get_member(self, key: str, member: str) -> bytes | None:
        value = await self._get_member(keys=self._member_keys(key), args=[member])
        return None if value is None else _bytes(value)

    async def list_members(self, key: str) -> dict[str, bytes]:
        flat = await self._list_members(keys=self._member_keys(key), args=["all"])
        return {_text(flat[i]): _bytes(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def count_members(self, key: str) -> int:
        return int(await self._list_members(keys=self._member_keys(key), args=["count"]))

    async def remove_members(self, key: str, members: Sequence[str]) -> None:
        if not members:
            return
        zkey, hkey = self._member_keys(key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(zkey, *members)
            pipe.hdel(hkey, *members)
            await pipe.execute()

    # -- events -----------------------------------------------------------------------------------------------

    async def publish(self, topic: str, data: Mapping[str, Any]) -> None:
        await self._redis.publish(
            self.channel, _encode(StateEvent(topic=topic, data=dict(data), origin=self.origin))
        )

    async def subscribe(self) -> RedisSubscription:
        pubsub: Any = self._redis.pubsub(ignore_subscribe_messages=True)  # redis-py leaves PubSub untyped
        try:
            await pubsub.subscribe(self.channel)
        except BaseException:
            await pubsub.aclose()
            raise
        return RedisSubscription(pubsub)


class RedisSubscription:
    """A pub/sub connection on the events channel (its own connection, as Redis requires)."""

    def __init__(self, pubsub: Any) -> None:
        self._pubsub = pubsub

    async def receive(self, timeout: float) -> StateEvent | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (left := deadline - loop.time()) > 0:
            # None also stands for a swallowed subscribe confirmation, or a message from a stranger: wait on.
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
            if message is not None and message.get("type") == "message":
                event = _decode(message["data"])
                if event is not None:
                    return event
        return None

    async def aclose(self) -> None:
        await self._pubsub.aclose()


_MEMBERS_PER_CALL: Final = 1000
"""Members written by one script call (Lua's stack, and how long one script blocks Redis)."""


def _encode(event: StateEvent) -> bytes:
    return json.dumps({"t": event.topic, "o": event.origin, "d": event.data}, sort_keys=True).encode()


def _decode(raw: Any) -> StateEvent | None:
    try:
        value = json.loads(raw)
        return StateEvent(
            topic=str(value["t"]), data=dict(value.get("d") or {}), origin=str(value.get("o", ""))
        )
    except (ValueError, KeyError, TypeError):
        return None  # not ours (someone else publishing on the channel): ignore it


def _bytes(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _loads(body: Any) -> dict[str, Any]:
    value = json.loads(body)
    return value if isinstance(value, dict) else {}
