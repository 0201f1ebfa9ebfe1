"""Prometheus metrics: counters and histograms fed by the `MetricsObserver`, gauges read at scrape time.

Rules:
- Each gateway has its own `CollectorRegistry` (never the process-global one), so tests and embedders can run
  several gateways side by side.
- Label cardinality is bounded by construction: servers come from the config, methods from the MCP catalogue,
  outcomes and reasons from small enums, tools only once the catalogue resolved them (capped per server, the rest
  is `other`). Never an argument value; principals only with `telemetry.metrics.principal_labels: true`.
- The per-call path is dictionary lookups of pre-bound label children; label values are worked out once per
  distinct key. Upstream state, session count and the audit queue are read by a collector when scraped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from bastion import __version__
from bastion.auth.failures import AuthFailure
from bastion.errors import Reason
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.protocol.methods import CLIENT_REQUESTS
from bastion.telemetry.config import MetricsConfig
from bastion.upstream.connection import State

if TYPE_CHECKING:
    from bastion.core.ports import Ports as Gateway
    from bastion.pipeline.exchange import Exchange

LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Histogram buckets in seconds: sub-millisecond gateway overhead up to slow tools."""
MAX_CACHED_KEYS: Final = 20_000
"""Pre-bound children kept per metric; past it, labels are still bounded but worked out on each call."""
_OUTCOMES: Final = frozenset({"allow", "deny", "error", "flag", "redact", "cancelled"})
_REASONS: Final = frozenset(str(r) for r in Reason)
_AUTH_FAILURES: Final = frozenset(str(f) for f in AuthFailure)
_NAMED_METHODS: Final = frozenset({"tools/call", "prompts/get"})
_MAX_DETECTORS: Final = 200
"""Distinct (detector, action) label pairs before new ones collapse to `other`."""
_MAX_ALERT_KINDS: Final = 50


class MetricsObserver:
    """Bastion's metrics for one gateway: an `ExchangeObserver` with an `on_notice` hook, and the registry."""

    def __init__(self, gateway: Gateway, config: MetricsConfig | None = None, *, audit: Any = None) -> None:
        """Create the registry and every metric.

        Args:
            gateway: The gateway whose upstreams, sessions and catalogue bound the labels.
            config: `telemetry.metrics`.
            audit: The audit recorder, read for `queue_depth`/`dropped` at scrape time (None: audit is off).
        """
        self.config = config or MetricsConfig()
        self._gateway = gateway
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["server", "tool", "method", "outcome"]
        if self.config.principal_labels:
            labels.append("principal")
        reg = self.registry
        self.calls = Counter("bastion_calls", "Client requests handled, by outcome.", labels, registry=reg)
        self.errors = Counter(
            "bastion_call_errors",
            "Refused or failed requests, by reason.",
            ["server", "method", "reason"],
            registry=reg,
        )
        self.duration = Histogram(
            "bastion_call_duration_seconds",
            "Time from request arrival to the reply being released (pipeline, upstream, audit).",
            ["server", "method"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.upstream_duration = Histogram(
            "bastion_upstream_duration_seconds",
            "Time spent waiting on the upstream server.",
            ["server", "method"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.findings = Counter(
            "bastion_guardrail_findings",
            "Guardrail findings, by detector and action.",
            ["detector", "action"],
            registry=reg,
        )
        self.auth_failures = Counter(
            "bastion_auth_failures", "Refused credentials, by reason.", ["reason"], registry=reg
        )
        self.alerts = Counter("bastion_alerts", "Anomaly alerts raised.", ["alert", "severity"], registry=reg)
        self.notices = Counter(
            "bastion_notices", "Notable events, by kind.", ["kind", "severity"], registry=reg
        )
        self.registry.register(_GatewayCollector(gateway, audit))
        self._calls: dict[tuple[Any, ...], Any] = {}
        self._errors: dict[tuple[Any, ...], Any] = {}
        self._durations: dict[tuple[str | None, str], tuple[Any, Any]] = {}
        self._findings: dict[tuple[str, str], Any] = {}
        self._tools: dict[str, set[str]] = {}
        self._alert_kinds: set[str] = set()

    # -- the observer ------------------------------------------------------------------------------------------

    async def on_exchange(self, exchange: Exchange) -> None:
        """Count one finished exchange (rejections, errors and cancellations included)."""
        elapsed = time.perf_counter() - exchange.started
        server, method, outcome = exchange.server, exchange.method, exchange.outcome
        if self.config.principal_labels:
            key: tuple[Any, ...] = (server, exchange.target, method, outcome, exchange.session.principal.name)
        else:
            key = (server, exchange.target, method, outcome)
        child = self._calls.get(key)
        if child is None:
            child = self._bind(self._calls, key, self.calls, self._call_labels(key))
        child.inc()
        pair = self._durations.get((server, method))
        if pair is None:
            pair = self._bind_durations(server, method)
        pair[0].observe(elapsed)
        if exchange.upstream_seconds > 0.0:
            pair[1].observe(exchange.upstream_seconds)
        if exchange.error is not None:
            self._count_error(server, method, exchange.error)
        if exchange.decisions:
            self._count_findings(exchange)

    async def on_notice(self, notice: Notice) -> None:
        """Count notable events; auth failures by reason and alerts by kind get their own counters."""
        self.notices.labels(str(notice.kind), _severity(notice.severity)).inc()
        if notice.kind is NoticeKind.AUTH_FAILURE:
            raw = notice.detail.get("reason", notice.detail.get("authFailure"))
            self.auth_failures.labels(raw if raw in _AUTH_FAILURES else "other").inc()
        elif notice.kind is NoticeKind.ALERT:
            alert = notice.detail.get("alert")
            label = alert if isinstance(alert, str) and alert.isidentifier() else "other"
            if label not in self._alert_kinds:
                if len(self._alert_kinds) >= _MAX_ALERT_KINDS:
                    label = "other"
                self._alert_kinds.add(label)
            self.alerts.labels(label, _severity(notice.severity)).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    # -- label binding (once per distinct key) -----------------------------------------------------------------

    @staticmethod
    def _bind(cache: dict[Any, Any], key: Any, metric: Any, labels: Iterable[str]) -> Any:
        child = metric.labels(*labels)
        if len(cache) < MAX_CACHED_KEYS:
            cache[key] = child
        return child

    def _server_label(self, server: str | None) -> str:
        if server is None:
            return ""
        return server if server in self._gateway.upstreams else "other"

    def _call_labels(self, key: tuple[Any, ...]) -> list[str]:
        server, target, method, outcome = key[:4]
        labels = [
            self._server_label(server),
            self._tool_label(server, method, target),
            method if method in CLIENT_REQUESTS else "other",
            outcome if outcome in _OUTCOMES else "other",
        ]
        if len(key) > 4:
            labels.append(str(key[4]))
        return labels

    def _tool_label(self, server: str | None, method: str, target: str | None) -> str:
        """A tool or prompt name the catalogue resolved (capped per server); `other` for anything else."""
        if method not in _NAMED_METHODS:
            return ""
        if server is None or target is None or server not in self._gateway.upstreams:
            return "other"  # the catalogue did not resolve it: never echo a caller-chosen name
        known = self._tools.setdefault(server, set())
        if target in known:
            return target
        if len(known) >= self.config.max_tools_per_server:
            return "other"
        known.add(target)
        return target

    def _bind_durations(self, server: str | None, method: str) -> tuple[Any, Any]:
        labels = (self._server_label(server), method if method in CLIENT_REQUESTS else "other")
        pair = (self.duration.labels(*labels), self.upstream_duration.labels(*labels))
        if len(self._durations) < MAX_CACHED_KEYS:
            self._durations[(server, method)] = pair
        return pair

    def _count_error(self, server: str | None, method: str, error: dict[str, Any]) -> None:
        data = error.get("data")
        reason = data.get("reason") if isinstance(data, dict) else None
        if reason not in _REASONS:
            reason = "upstream_error"  # a JSON-RPC error the upstream returned itself
        key = (server, method, reason)
        child = self._errors.get(key)
        if child is None:
            labels = (
                self._server_label(server),
                method if method in CLIENT_REQUESTS else "other",
                str(reason),
            )
            child = self._bind(self._errors, key, self.errors, labels)
        child.inc()

    def _count_findings(self, exchange: Exchange) -> None:
        for decision in exchange.decisions:
            for finding in decision.findings:
                key = (finding.detector, finding.action or decision.outcome)
                child = self._findings.get(key)
                if child is None:
                    if len(self._findings) >= _MAX_DETECTORS:
                        key = ("other", "other")
                    child = self._findings.get(key)
                    if child is None:
                        child = self._findings[key] = self.findings.labels(*key)
                child.inc()


def _severity(value: str) -> str:
    return value if value in ("info", "warning", "critical") else "other"


class _GatewayCollector:
    """Gauges read from the gateway when scraped: cheaper than keeping them current on every change."""

    def __init__(self, gateway: Gateway, audit: Any) -> None:
        self._gateway = gateway
        self._audit = audit

    def describe(self) -> Iterable[Metric]:
        return []  # families are built on each scrape; nothing to pre-declare

    def _audit_source(self) -> Any:
        return self._audit

    def collect(self) -> Iterator[Metric]:
        gateway = self._gateway
        info = GaugeMetricFamily(
            "bastion_build_info", "Bastion version and replica.", labels=["version", "replica"]
        )
        info.add_metric([__version__, gateway.config.cluster.replica_id], 1)
        yield info
        sessions = GaugeMetricFamily("bastion_active_sessions", "Client sessions open on this replica.")
        sessions.add_metric([], len(gateway.sessions))
        yield sessions
        up = GaugeMetricFamily(
            "bastion_upstream_up", "1 when the upstream is connected and ready.", labels=["server"]
        )
        state = GaugeMetricFamily(
            "bastion_upstream_state",
            "Upstream connection state (1 for the current one).",
            labels=["server", "state"],
        )
        restarts = CounterMetricFamily(
            "bastion_upstream_restarts", "Reconnections since start.", labels=["server"]
        )
        for name, conn in gateway.upstreams.items():
            up.add_metric([name], 1 if conn.state is State.READY else 0)
            for candidate in State:
                state.add_metric([name, str(candidate)], 1 if conn.state is candidate else 0)
            restarts.add_metric([name], conn.restarts)
        yield up
        yield state
        yield restarts
        audit = self._audit_source()
        if audit is not None:
            depth = getattr(audit, "queue_depth", None)
            if isinstance(depth, int | float):
                family = GaugeMetricFamily("bastion_audit_queue_depth", "Audit events waiting to be written.")
                family.add_metric([], depth)
                yield family
            for attribute, help_text in (
                ("dropped", "Audit events dropped (queue full)."),
                ("lost", "Audit events lost for good (queue or sink backlog overflow)."),
            ):
                count = getattr(audit, attribute, None)
                if isinstance(count, int | float):
                    counter = CounterMetricFamily(f"bastion_audit_{attribute}", help_text)
                    counter.add_metric([], count)
                    yield counter
