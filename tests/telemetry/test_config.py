"""The `telemetry:` section: optional, validated, secrets kept secret."""

from __future__ import annotations

import pytest

from bastion.config import parse_config
from bastion.errors import ConfigError
from bastion.telemetry.config import TelemetryConfig


def test_the_section_is_optional_with_metrics_and_anomaly_on_and_tracing_off() -> None:
    config = parse_config({}).telemetry
    assert config == TelemetryConfig()
    assert config.metrics.enabled and config.metrics.loopback_open and not config.metrics.principal_labels
    assert not config.tracing.enabled and config.anomaly.enabled and config.anomaly.webhook is None


def test_a_full_section_parses_and_its_secrets_do_not_print() -> None:
    config = parse_config(
        {
            "telemetry": {
                "metrics": {"bearer_token": "scrape-secret-123", "roles": ["ops"], "principal_labels": True},
                "tracing": {
                    "enabled": True,
                    "exporter": "otlp",
                    "endpoint": "https://otel.example.test/v1/traces",
                    "sample_ratio": 0.25,
                    "headers": {"x-api-key": "otel-secret-456"},
                },
                "anomaly": {
                    "cooldown_seconds": 60,
                    "rate_spike": {"k": 5, "min_calls": 100},
                    "recon": {"servers": 8},
                    "webhook": {"url": "https://hooks.example.test/a", "headers": {"x-token": "hook-789"}},
                },
            }
        }
    ).telemetry
    assert config.tracing.sample_ratio == 0.25 and config.anomaly.recon.servers == 8
    text = repr(config) + str(config.model_dump())
    for secret in ("scrape-secret-123", "otel-secret-456", "hook-789"):
        assert secret not in text


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ({"metrics": {"unknown": 1}}, "telemetry.metrics.unknown"),
        ({"tracing": {"sample_ratio": 2}}, "telemetry.tracing.sample_ratio"),
        ({"tracing": {"exporter": "zipkin"}}, "telemetry.tracing.exporter"),
        ({"anomaly": {"webhook": {"url": "ftp://x"}}}, "telemetry.anomaly.webhook.url"),
    ],
)
def test_bad_keys_are_refused_with_their_path(section: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"telemetry": section})
    assert path in str(info.value)
