"""Telemetry: Prometheus metrics, OpenTelemetry traces, structured JSON logs and anomaly alerts.

Importing the package is cheap (the config models only): the session imports `telemetry.context` on its hot path,
and OpenTelemetry is loaded only when tracing is used. Entry points: `install.build_telemetry(config, ports)` (its
`contribution` goes to the gateway through the composition root), `logs.setup_logging()`.
"""
