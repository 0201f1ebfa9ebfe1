"""Shared state behind the state seams (`state.base`): embedded (SQLite + in-process) or Redis."""

from __future__ import annotations

from bastion.errors import ConfigError
from bastion.state.base import (
    BucketResult,
    BucketStore,
    KeyValueStore,
    LeaseStore,
    MemberStore,
    PubSub,
    RecordStore,
    StateEvent,
    StateStore,
    Subscription,
)
from bastion.state.config import StateConfig
from bastion.state.embedded import EmbeddedStateStore

__all__ = [
    "BucketResult",
    "BucketStore",
    "EmbeddedStateStore",
    "KeyValueStore",
    "LeaseStore",
    "MemberStore",
    "PubSub",
    "RecordStore",
    "StateConfig",
    "StateEvent",
    "StateStore",
    "Subscription",
    "open_state_store",
]


def open_state_store(config: StateConfig) -> StateStore:
    """The store a config asks for (not yet opened; use it as an async context manager or call `aclose()`)."""
    if config.backend == "redis":
        from bastion.state.redis_store import RedisStateStore  # only import redis when it is used

        if config.url is None:
            raise ConfigError("backend: redis needs `url`", path="state.url")
        return RedisStateStore(
            config.url, key_prefix=config.key_prefix, timeout_seconds=config.timeout_seconds
        )
    return EmbeddedStateStore(config.path)
