"""Telemetry: Prometheus metrics, OpenTelemetry traces, structured JSON logs and anomaly alerts.

Importing the package is cheap (the config models only), and OpenTelemetry is loaded only when tracing is used;
the per-request ids it reads are set by the session in `pipeline/context.py`, below both. Entry points: `install.build_telemetry(config, ports)` (its
`contribution` goes to the gateway through the composition root), `logs.setup_logging()`.
"""
