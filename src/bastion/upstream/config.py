"""One upstream server's settings (`servers.<name>`): how to reach it, limits, health checks and the circuit breaker.

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

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


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


class ServerConfig(_Model):
    """One upstream MCP server."""

    transport: Literal["stdio", "streamable-http", "sse"]
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, SecretStr] = Field(default_factory=dict)
    """Extra environment for a stdio server (credentials injected by the gateway); values are never logged."""
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Extra HTTP headers for an HTTP server (e.g. its own Authorization); values are never logged."""
    protocol: Literal["auto", "legacy", "modern"] = "auto"
    """`auto` probes `server/discover` and falls back to the initialize handshake."""
    timeout_seconds: float = Field(default=60.0, gt=0)
    """Per-request timeout for this server."""
    connect_timeout_seconds: float = Field(default=30.0, gt=0)
    tool_timeouts: dict[str, float] = Field(default_factory=dict)
    """Per-tool overrides of `timeout_seconds`, keyed by the upstream's own tool name."""
    client_capabilities: dict[str, list[Literal["sampling", "elicitation", "roots"]]] = Field(
        default_factory=dict
    )
    """Tools, prompts or resource URIs of this server (its own names) that need these client capabilities."""
    max_concurrent: int = Field(default=256, gt=0)
    """Client calls in flight to this server at once; one more is refused at once with `RateLimited`."""
    health: HealthConfig = Field(default_factory=HealthConfig)
    """Periodic health checks (ping, or server/discover for 2026-07-28 servers)."""
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    """The circuit breaker: failed calls in a row make further calls fail fast until a probe succeeds."""
    isolation: Literal["session", "principal", "shared"] | None = None
    """Who shares an upstream connection: one upstream session per client session (`session`, the HTTP default),
    one process per principal (`principal`, the stdio default) or everyone (`shared`; see upstream/association)."""
    idle_seconds: float = Field(default=300.0, gt=0)
    """A `session`/`principal`-scoped connection without calls for this long is closed (a process is reaped)."""
    max_processes: int = Field(default=64, gt=0)
    """Scoped connections (processes, upstream sessions) of this server open at once; beyond: `RateLimited`."""
    max_processes_per_principal: int | None = Field(default=None, gt=0)
    """Of those, how many one principal may hold (its sessions' upstream sessions), so that no principal takes
    the server's whole `max_processes` from the others; beyond: `RateLimited` for that principal only. Unset: no
    share (with auth off every client is the one anonymous principal, and a per-principal share would cap them all)."""
    enabled: bool = True

    @model_validator(mode="after")
    def _check_transport_fields(self) -> ServerConfig:
        if self.transport == "stdio":
            if not self.command:
                raise ValueError("a stdio server needs `command`")
            if self.url:
                raise ValueError("a stdio server takes `command`, not `url`")
        else:
            if not self.url:
                raise ValueError(f"a {self.transport} server needs `url`")
            if not self.url.startswith(("http://", "https://")):
                raise ValueError("`url` must be http:// or https://")
            if self.command:
                raise ValueError(f"a {self.transport} server takes `url`, not `command`")
        return self
