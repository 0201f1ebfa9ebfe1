"""Per-upstream reliability settings: health checks and the circuit breaker (`servers.<name>.health|breaker`).

Example:
    servers:
      search:
        transport: streamable-http
        url: https://search.internal/mcp
        timeout_seconds: 30
        max_concurrent: 64           # calls in flight to this server at once; more are refused (RateLimited)
        health:
          interval_seconds: 15       # ping (handshake era) or server/discover (2026-07-28) every 15 s
          timeout_seconds: 5
          failures: 3                # three failed checks in a row: marked down and reconnected
        breaker:
          failures: 5                # five failed calls in a row (timeouts, transport errors): circuit opens
          cooldown_seconds: 5        # then one probe after 5 s; success closes it, failure doubles the wait
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthConfig(_Model):
    """Periodic health checks of one upstream while it is connected."""

    interval_seconds: float = Field(default=30.0, ge=0)
    """Seconds between checks; 0 turns periodic checks off (the breaker's probes still run)."""
    timeout_seconds: float = Field(default=10.0, gt=0)
    """How long one check may take before it counts as failed."""
    failures: int = Field(default=3, ge=1)
    """Failed checks in a row after which the upstream is marked down: its connection is closed (a child
    process is terminated) and supervision reconnects with backoff."""


class BreakerConfig(_Model):
    """The circuit breaker in front of one upstream."""

    enabled: bool = True
    failures: int = Field(default=5, ge=1)
    """Failed calls in a row (timeouts, transport failures; not tool errors) that open the circuit."""
    cooldown_seconds: float = Field(default=5.0, gt=0)
    """Seconds the circuit stays open before one probe is let through (half-open)."""
    max_cooldown_seconds: float = Field(default=60.0, gt=0)
    """The cool-down doubles after each failed probe, up to this."""

    @model_validator(mode="after")
    def _check_cooldowns(self) -> BreakerConfig:
        if self.max_cooldown_seconds < self.cooldown_seconds:
            raise ValueError("max_cooldown_seconds must be at least cooldown_seconds")
        return self
