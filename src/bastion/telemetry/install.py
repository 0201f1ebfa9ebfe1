"""Telemetry as a feature: metrics and anomaly observers, tracing, the /metrics route and the traceparent reader.

`build_telemetry(config, ports)` is what the composition root (`bastion.app`) calls; the root adds its contribution
after audit's, so observers run audit first. Tests build it the same way and hand the contribution to a running
gateway with `gateway.use(telemetry.contribution)`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bastion.core.contribution import Contribution, Resource
from bastion.core.ports import Ports
from bastion.telemetry.anomaly import AnomalyDetector
from bastion.telemetry.config import TelemetryConfig
from bastion.telemetry.endpoint import metrics_route
from bastion.telemetry.metrics import MetricsObserver
from bastion.telemetry.propagation import TraceContextMiddleware

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from bastion.auth.authenticator import Authenticator
    from bastion.state.base import StateStore
    from bastion.telemetry.tracing import Tracer


@dataclass(frozen=True, slots=True, kw_only=True)
class Telemetry:
    """What `telemetry:` asked for. Each part is None when switched off."""

    config: TelemetryConfig
    metrics: MetricsObserver | None
    tracer: Tracer | None
    anomaly: AnomalyDetector | None
    contribution: Contribution
    """Metrics and anomaly observers, the tracer, their closing, the pager on held calls."""

    def routes(self, authenticator: Authenticator | None = None) -> list[Any]:
        """The HTTP routes telemetry serves (`GET /metrics` when metrics are on)."""
        if self.metrics is None:
            return []
        return [metrics_route(self.metrics.render, self.config.metrics, authenticator=authenticator)]

    def wrap_app(self, app: Any) -> Any:
        """`app` behind the middleware that accepts a client's HTTP `traceparent` (only when tracing is on)."""
        return TraceContextMiddleware(app) if self.tracer is not None else app


def build_telemetry(
    config: TelemetryConfig | None,
    ports: Ports,
    *,
    store: StateStore | None = None,
    span_exporter: SpanExporter | None = None,
    clock: Callable[[], float] = time.time,
    audit: Any = None,
    authenticator: Authenticator | None = None,
) -> Telemetry:
    """Build every enabled part of telemetry for the gateway behind `ports`.

    Args:
        config: `telemetry:` (default: every default).
        ports: The gateway, as features see it (metrics label by its upstreams; anomalies are emitted there).
        store: Where anomaly baselines live (default: a private in-memory store).
        span_exporter: Export spans here instead of where the config says (tests use an in-memory one).
        clock: Wall clock of the anomaly detector (tests inject one).
        audit: The audit recorder whose `queue_depth`/`dropped` are exported (None: audit is off).
        authenticator: Who may scrape `/metrics` when `telemetry.metrics` asks for authentication.
    """
    config = config or TelemetryConfig()
    observers: list[Any] = []
    resources: list[Resource] = []
    metrics = None
    if config.metrics.enabled:
        metrics = MetricsObserver(ports, config.metrics, audit=audit)
        observers.append(metrics)  # also a notice observer: it has on_notice
    tracer = None
    if config.tracing.enabled:
        from bastion.telemetry.tracing import Tracer  # OpenTelemetry is only imported when tracing is on

        tracer = Tracer.from_config(
            config.tracing, exporter=span_exporter, instance=ports.config.cluster.replica_id
        )
        resources.append(Resource(name="tracer", close=tracer.aclose))
    anomaly = None
    pager: tuple[Any, ...] = ()
    if config.anomaly.enabled:
        if store is None:
            from bastion.state.embedded import EmbeddedStateStore

            store = EmbeddedStateStore(":memory:")  # KV only: nothing to open
        anomaly = AnomalyDetector(config.anomaly, store, ports.emit, clock=clock)
        observers.append(anomaly)
        resources.append(Resource(name="anomaly detector", close=anomaly.aclose))
        if anomaly.webhook is not None:
            pager = (_page_operators(anomaly.webhook),)
    routes: tuple[Any, ...] = ()
    if metrics is not None:
        routes = (metrics_route(metrics.render, config.metrics, authenticator=authenticator),)
    return Telemetry(
        config=config,
        metrics=metrics,
        tracer=tracer,
        anomaly=anomaly,
        contribution=Contribution(
            observers=tuple(observers),
            resources=tuple(resources),
            tracer=tracer,
            approval_listeners=pager,
            routes=routes,
            # Reads the client's HTTP `traceparent` (only when tracing is on).
            middleware=(TraceContextMiddleware,) if tracer is not None else (),
        ),
    )


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
