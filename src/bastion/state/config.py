"""`StateConfig`: where Bastion keeps shared state (API keys, rate-limit buckets, pins, approvals)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StateConfig(BaseModel):
    """The `state:` section. Embedded (one process, SQLite file) by default; Redis for several replicas."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["embedded", "redis"] = "embedded"
    """`embedded`: SQLite file for durable records, in-process counters. `redis`: everything in Redis."""
    path: str = "bastion-state.db"
    """SQLite file of the embedded backend (relative to the config file's folder; `:memory:` for tests)."""
    url: str | None = None
    """Redis URL of the redis backend, e.g. `redis://127.0.0.1:6379/0`."""
    key_prefix: str = Field(default="bastion:", min_length=1)
    """Prefix of every Redis key, so several deployments can share one Redis."""
    timeout_seconds: float = Field(default=2.0, gt=0)
    """Upper bound of one store operation; a slower store counts as failed (stages fail closed)."""

    @model_validator(mode="after")
    def _check_backend(self) -> StateConfig:
        if self.backend == "redis" and not self.url:
            raise ValueError("backend: redis needs `url`")
        if self.url and not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("`url` must be redis://, rediss:// or unix://")
        return self
