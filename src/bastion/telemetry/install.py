"""Attach telemetry to a gateway: metrics and anomaly observers, tracing hooks, the /metrics route.

`install_telemetry(runtime)` is what `build_runtime()` calls (after audit, so observers run audit first);
`telemetry_routes(runtime)` gives the HTTP app its extra routes; `wrap_http_app(runtime, app)` adds the middleware
that reads the HTTP `traceparent` header. Tests attach to a gateway directly with `Telemetry.attach(gateway, ...)`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bastion.telemetry.anomaly import AnomalyDetector
from bastion.telemetry.config import TelemetryConfig
from bastion.telemetry.endpoint import metrics_route
from bastion.telemetry.metrics import MetricsObserver
from bastion.telemetry.propagation import TraceContextMiddleware

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter
    from starlette.routing import BaseRoute

    from bastion.auth.authenticator import Authenticator
    from bastion.gateway import Gateway
    from bastion.runtime import Runtime
    from bastion.state.base import StateStore
    from bastion.telemetry.tracing import Tracer

EXTRAS_KEY = "telemetry"
"""Where `install_telemetry` keeps the `Telemetry` in `Runtime.extras`."""


class Telemetry:
    """What `telemetry:` asked for, attached to one gateway. Each part is None when switched off."""

    def __init__(
        self,
        config: TelemetryConfig,
        *,
        metrics: MetricsObserver | None,
        tracer: Tracer | None,
        anomaly: AnomalyDetector | None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.tracer = tracer
        self.anomaly = anomaly

    @classmethod
    def attach(
        cls,
        gateway: Gateway,
        config: TelemetryConfig | None = None,
        *,
        store: StateStore | None = None,
        span_exporter: SpanExporter | None = None,
        clock: Callable[[], float] = time.time,
        audit: Any = None,
    ) -> Telemetry:
        """Build every enabled part and hook it into `gateway` (observers go after those already there).

        Args:
            gateway: The gateway to observe.
            config: `telemetry:` (default: every default).
            store: Where anomaly baselines live (default: a private in-memory store).
            span_exporter: Export spans here instead of where the config says (tests use an in-memory one).
            clock: Wall clock of the anomaly detector (tests inject one).
            audit: The audit recorder whose `queue_depth`/`dropped` are exported (default: found among observers).
        """
        config = config or TelemetryConfig()
        metrics = None
        if config.metrics.enabled:
            metrics = MetricsObserver(gateway, config.metrics, audit=audit)
            gateway.observers.append(metrics)  # also a notice observer: it has on_notice
        tracer = None
        if config.tracing.enabled:
            from bastion.telemetry.tracing import Tracer  # OpenTelemetry is only imported when tracing is on

            tracer = Tracer.from_config(
                config.tracing, exporter=span_exporter, instance=gateway.config.cluster.replica_id
            )
            gateway.pipeline.tracer = tracer
            for conn in gateway.upstreams.values():
                conn.tracer = tracer
            gateway.closers.append(tracer.aclose)
        anomaly = None
        if config.anomaly.enabled:
            if store is None:
                from bastion.state.embedded import EmbeddedStateStore

                store = EmbeddedStateStore(":memory:")  # KV only: nothing to open
            anomaly = AnomalyDetector(config.anomaly, store, gateway.emit, clock=clock)
            gateway.observers.append(anomaly)
            gateway.closers.append(anomaly.aclose)
            if anomaly.webhook is not None:
                gateway.approvals.listeners.append(_page_operators(anomaly.webhook))
        return cls(config, metrics=metrics, tracer=tracer, anomaly=anomaly)

    def routes(self, authenticator: Authenticator | None = None) -> list[BaseRoute]:
        """The HTTP routes telemetry serves (`GET /metrics` when metrics are on)."""
        if self.metrics is None:
            return []
        return [metrics_route(self.metrics.render, self.config.metrics, authenticator=authenticator)]

    def wrap_app(self, app: Any) -> Any:
        """`app` behind the middleware that accepts a client's HTTP `traceparent` (only when tracing is on)."""
        return TraceContextMiddleware(app) if self.tracer is not None else app


def _config_of(runtime: Runtime) -> TelemetryConfig:
    config = getattr(runtime.config, "telemetry", None)
    return config if isinstance(config, TelemetryConfig) else TelemetryConfig()


def install_telemetry(runtime: Runtime) -> Telemetry:
    """Attach telemetry as `runtime.config.telemetry` says; kept in `runtime.extras["telemetry"]`."""
    telemetry = Telemetry.attach(runtime.gateway, _config_of(runtime), store=runtime.store)
    runtime.extras[EXTRAS_KEY] = telemetry
    return telemetry


def _installed(runtime: Runtime) -> Telemetry:
    telemetry = runtime.extras.get(EXTRAS_KEY)
    return telemetry if isinstance(telemetry, Telemetry) else install_telemetry(runtime)


def telemetry_routes(runtime: Runtime) -> list[BaseRoute]:
    """Routes for `create_app(gateway, extra_routes=...)`: `GET /metrics`, guarded by `telemetry.metrics`."""
    return _installed(runtime).routes(runtime.authenticator)


def wrap_http_app(runtime: Runtime, app: Any) -> Any:
    """The HTTP app with telemetry's ASGI middleware (the `traceparent` header reader when tracing is on)."""
    return _installed(runtime).wrap_app(app)


def _page_operators(webhook: Any) -> Any:
    """An approvals listener: every call held for an operator is also POSTed to the alert webhook."""
    from bastion.pipeline.notice import Notice, NoticeKind

    def listener(event: str, item: Any) -> None:
        if event == "pending":
            webhook.send(
                Notice(
                    kind=NoticeKind.APPROVAL,
                    severity="warning",
                    principal=item.principal,
                    server=item.server or "",
                    target=item.target or "",
                    session_id=item.session_id,
                    detail={"approval": item.id, "event": "pending", "question": item.question},
                )
            )

    return listener
