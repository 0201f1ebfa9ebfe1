"""Telemetry: Prometheus metrics, OpenTelemetry traces, structured JSON logs and anomaly alerts.

Importing the package is cheap (the config models only): the session imports `telemetry.context` on its hot path,
and OpenTelemetry is loaded only when tracing is used. Entry points: `install.install_telemetry(runtime)`,
`install.telemetry_routes(runtime)`, `install.Telemetry.attach(gateway, ...)` (tests), `logs.setup_logging()`.
"""
