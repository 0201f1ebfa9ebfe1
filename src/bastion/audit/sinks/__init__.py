"""Audit sinks: SQLite (the default), PostgreSQL and JSON Lines, all behind `AuditSink` + `AuditReader`."""

from __future__ import annotations

from bastion.audit.config import JsonlSinkConfig, PostgresSinkConfig, SqliteSinkConfig
from bastion.audit.sinks.base import AuditQuery, AuditReader, AuditSink, EncodedEvent, Sink

__all__ = ["AuditQuery", "AuditReader", "AuditSink", "EncodedEvent", "Sink", "build_sink"]


def build_sink(config: SqliteSinkConfig | PostgresSinkConfig | JsonlSinkConfig) -> Sink:
    """The sink a config entry describes (not opened yet; asyncpg is imported only when PostgreSQL is used)."""
    if isinstance(config, PostgresSinkConfig):
        from bastion.audit.sinks.postgres import PostgresAuditSink

        return PostgresAuditSink(config)
    if isinstance(config, JsonlSinkConfig):
        from bastion.audit.sinks.jsonl import JsonlAuditSink

        return JsonlAuditSink(config)
    from bastion.audit.sinks.sqlite import SqliteAuditSink

    return SqliteAuditSink(config)
