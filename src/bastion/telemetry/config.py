"""`TelemetryConfig`: the `telemetry:` section (Prometheus metrics, OpenTelemetry traces, anomaly alerts).

Every part has defaults, so the whole section is optional: metrics on (served on loopback only), tracing off,
anomaly detection on with conservative thresholds and no webhook.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricsConfig(_Model):
    """Prometheus metrics and who may scrape them."""

    enabled: bool = True
    path: str = "/metrics"
    """Where the scrape endpoint is served."""
    principal_labels: bool = False
    """Add a `principal` label to the call counter. Off by default: one series per caller does not scale."""
    loopback_open: bool = True
    """Scrapes from a loopback address need no credential (a reverse proxy on the same host counts as loopback)."""
    bearer_token: SecretStr | None = None
    """A static scrape token (`Authorization: Bearer ...`), compared in constant time; never logged."""
    roles: list[str] = Field(default_factory=lambda: ["admin"])
    """A principal authenticated by Bastion (API key or JWT) with one of these roles may scrape."""
    max_tools_per_server: int = Field(default=500, gt=0)
    """Distinct tool label values per server; beyond it tools collapse to `other` (bounded cardinality)."""

    @field_validator("path")
    @classmethod
    def _check_path(cls, path: str) -> str:
        if not path.startswith("/") or path.rstrip("/") in ("", "/mcp", "/sse", "/messages"):
            raise ValueError("path must start with / and must not shadow an MCP endpoint")
        return path


class TracingConfig(_Model):
    """OpenTelemetry traces: a span per client request, per pipeline stage and per upstream call."""

    enabled: bool = False
    exporter: Literal["otlp", "none"] = "otlp"
    """`otlp` sends spans over OTLP/HTTP; `none` keeps tracing (ids, propagation) without exporting."""
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    """OTLP/HTTP traces endpoint of a collector."""
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Extra headers for the collector (e.g. its API key); values are never logged."""
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """Fraction of new traces recorded; a client's sampled `traceparent` is honoured (parent-based)."""
    stage_spans: bool = True
    """A child span per stage and phase. Each costs tens of microseconds in the Python SDK (see the report in
    bench/telemetry_overhead.py); off keeps the request and upstream spans only."""
    service_name: str = "bastion"
    timeout_seconds: float = Field(default=10.0, gt=0)
    """Upper bound of one export."""

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, endpoint: str) -> str:
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError("endpoint must be http:// or https://")
        return endpoint


class WebhookConfig(_Model):
    """Where alerts are POSTed (JSON); delivery is best effort and never delays a call."""

    url: str
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Extra headers (e.g. a shared secret for the receiver); values are never logged or put in the body."""
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    max_pending: int = Field(default=100, gt=0)
    """Deliveries in flight at once; more are dropped (and logged) rather than queued without bound."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("url must be http:// or https://")
        return url


class RateSpikeConfig(_Model):
    """(a) A principal's calls per window far above its own recent history."""

    enabled: bool = True
    alpha: float = Field(default=0.2, gt=0, le=1)
    """EWMA smoothing factor of the per-window call counts (higher forgets faster)."""
    k: float = Field(default=4.0, gt=0)
    """Alert when a window's count exceeds mean + k * stddev of the history."""
    min_calls: int = Field(default=30, gt=0)
    """...and at least this many calls (so a quiet principal making a few calls is not a spike)."""
    warmup_windows: int = Field(default=5, ge=1)
    """Windows of history needed before judging."""


class NewToolConfig(_Model):
    """(b) A principal using a tool it has never used, once it is past its warm-up."""

    enabled: bool = True
    warmup_seconds: float = Field(default=86400.0, ge=0)
    """A principal's first period: tools it uses are learned silently."""
    memory_seconds: float = Field(default=90 * 86400.0, gt=0)
    """How long a used tool stays known without being used again."""


class BurstConfig(_Model):
    """(c) Many denials or guardrail findings for one principal in a short window."""

    enabled: bool = True
    threshold: int = Field(default=10, gt=0)
    window_seconds: float = Field(default=60.0, gt=0)


class LargeResultConfig(_Model):
    """(d) A result much larger than usual flowing to a principal."""

    enabled: bool = True
    min_bytes: int = Field(default=1024 * 1024, gt=0)
    """Results smaller than this never alert."""
    factor: float = Field(default=10.0, ge=1)
    """...and, once the principal has history, the result must be this many times its average size."""
    warmup_results: int = Field(default=20, ge=0)
    """Results needed before the average is trusted (until then `min_bytes` alone decides)."""


class ReconConfig(_Model):
    """(e) Calls to many different servers in a short window (reconnaissance)."""

    enabled: bool = True
    servers: int = Field(default=5, ge=2)
    window_seconds: float = Field(default=60.0, gt=0)


class AnomalyConfig(_Model):
    """Anomaly detection on tool-invocation patterns, per principal."""

    enabled: bool = True
    window_seconds: float = Field(default=60.0, gt=0)
    """Length of one rate window (the unit of the call-rate baseline)."""
    cooldown_seconds: float = Field(default=900.0, gt=0)
    """At most one alert per kind per principal per cool-down."""
    max_principals: int = Field(default=10_000, gt=0)
    """Principals whose recent activity is kept in memory; the least recently seen is forgotten first."""
    queue_size: int = Field(default=10_000, gt=0)
    """Exchanges waiting for analysis; when full, new ones are skipped (calls are never slowed)."""
    rate_spike: RateSpikeConfig = Field(default_factory=RateSpikeConfig)
    new_tool: NewToolConfig = Field(default_factory=NewToolConfig)
    burst: BurstConfig = Field(default_factory=BurstConfig)
    large_result: LargeResultConfig = Field(default_factory=LargeResultConfig)
    recon: ReconConfig = Field(default_factory=ReconConfig)
    webhook: WebhookConfig | None = None


class TelemetryConfig(_Model):
    """The `telemetry:` section."""

    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    anomaly: AnomalyConfig = Field(default_factory=AnomalyConfig)
