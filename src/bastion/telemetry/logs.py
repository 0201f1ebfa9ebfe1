"""Structured logs: one JSON object per line, carrying the same ids as audit records and traces.

Rules:
- Fields: `time` (UTC, ISO 8601, milliseconds), `level`, `logger`, `message`, then the ids of the request being
  served (`session` prefix, `exchange`, `trace_id`, `span_id`) and `exception` when there is one.
- Only the formatted message is written, never a record's other attributes (`extra=` could carry anything).
- Log messages are built from names and reasons; as a second line of defence, bearer tokens and Bastion API keys
  that slip into a message or a traceback are masked.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, Final, TextIO

import orjson

from bastion.pipeline.context import current_ids

_SECRETS: Final = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
    (re.compile(r"\bbst_[A-Za-z0-9_-]{8,}"), "bst_[redacted]"),
    (
        re.compile(
            r"(?i)\b(x-api-key|authorization|api[_-]?key|password|secret)(\"?\s*[:=]\s*\"?)[^\s\",}]+"
        ),
        r"\1\2[redacted]",
    ),
)
"""Credential shapes masked in log text (defence in depth: messages should never contain them)."""


def scrub(text: str) -> str:
    """`text` with anything shaped like a credential masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _span_ids() -> tuple[str, str] | None:
    """The current OpenTelemetry span's ids, when tracing is on and a span is active."""
    otel = sys.modules.get("opentelemetry.trace")
    if otel is None:  # tracing never loaded: nothing to look up
        return None
    context = otel.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return otel.format_trace_id(context.trace_id), otel.format_span_id(context.span_id)


class JsonFormatter(logging.Formatter):
    """Formats each record as one JSON line (for log shippers)."""

    def format(self, record: logging.LogRecord) -> str:
        created = time.gmtime(record.created)
        millis = int(record.msecs)
        entry: dict[str, Any] = {
            "time": f"{time.strftime('%Y-%m-%dT%H:%M:%S', created)}.{millis:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        entry.update(current_ids())
        spans = _span_ids()
        if spans is not None:
            entry.setdefault("trace_id", spans[0])
            entry["span_id"] = spans[1]
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        elif record.stack_info:
            entry["stack"] = scrub(self.formatStack(record.stack_info))
        return orjson.dumps(entry).decode()


TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The human format (the default)."""


def setup_logging(level: str = "INFO", *, log_format: str = "text", stream: TextIO | None = None) -> None:
    """Configure the root logger: `text` for humans, `json` for machines. Logs go to stderr by default.

    Args:
        level: DEBUG, INFO, WARNING or ERROR.
        log_format: `text` or `json`.
        stream: Where lines go (stderr by default: in stdio mode stdout carries the protocol).
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler], force=True)
