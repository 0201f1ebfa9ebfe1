"""Structured JSON logs: one object per line, the same ids as audit and traces, no secrets."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
from mcp import Client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import BaseStage
from bastion.pipeline.verdicts import PASS, Verdict
from bastion.telemetry.config import TelemetryConfig
from bastion.telemetry.logs import JsonFormatter, scrub
from bastion.testing import client_transport, running_gateway
from tests.peers import ROOT, bastion_env
from tests.servers import calc
from tests.telemetry.conftest import attach

SECRET_ARGUMENT = "sk-live-arg-77aa88bb99cc"
API_KEY = "bst_0123456789abcdef_Zm9vYmFyYmF6cXV4cXV1eA"


class Chatty(BaseStage):
    """A real stage that logs (names only, as stages must)."""

    name = "chatty"

    async def on_request(self, exchange: Exchange) -> Verdict:
        logging.getLogger("tests.telemetry.chatty").info("checking %s", exchange.method)
        return PASS


class Seen:
    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []

    async def on_exchange(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.telemetry.chatty")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


@pytest.mark.anyio
async def test_log_lines_during_a_call_carry_its_session_exchange_and_trace_ids(
    json_lines: io.StringIO,
) -> None:
    seen = Seen()
    config = TelemetryConfig.model_validate({"tracing": {"enabled": True}, "anomaly": {"enabled": False}})
    async with running_gateway({"calc": calc.build()}, stages=[Chatty()], observers=[seen]) as gw:
        attach(gw, config, span_exporter=InMemorySpanExporter())
        async with Client(client_transport(gw), mode="legacy") as client:
            await client.call_tool("calc__echo", {"text": SECRET_ARGUMENT})
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    call = next(e for e in seen.exchanges if e.method == "tools/call")
    (entry,) = [line for line in lines if line["exchange"] == call.exchange_id]
    assert entry["message"] == "checking tools/call"
    assert entry["level"] == "INFO" and entry["logger"] == "tests.telemetry.chatty"
    assert entry["session"] == call.session.session_id[:12]
    assert entry["trace_id"] == call.trace_id and len(entry["trace_id"]) == 32
    assert len(entry["span_id"]) == 16
    assert entry["time"].endswith("Z")
    assert SECRET_ARGUMENT not in json_lines.getvalue()


def test_a_line_outside_a_request_has_no_ids_and_credentials_are_masked() -> None:
    record = logging.LogRecord(
        "bastion.x",
        logging.WARNING,
        __file__,
        1,
        "got %s and key %s",
        ("Authorization: Bearer abcdefghijklmnop", API_KEY),
        None,
    )
    entry = json.loads(JsonFormatter().format(record))
    assert set(entry) == {"time", "level", "logger", "message"}
    assert "abcdefghijklmnop" not in entry["message"] and "Zm9vYmFy" not in entry["message"]
    assert scrub('{"x-api-key": "topsecretvalue"}') == '{"x-api-key": "[redacted]"}'


def test_exceptions_are_one_json_field_and_masked_too() -> None:
    try:
        raise RuntimeError(f"upstream said Bearer {API_KEY}")
    except RuntimeError:
        record = logging.LogRecord("bastion.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert "RuntimeError" in entry["exception"] and API_KEY not in entry["exception"]


@pytest.mark.integration
def test_the_log_format_json_option_makes_every_stderr_line_a_json_object() -> None:
    script = (
        "import logging\n"
        "from bastion.app import cli\n"
        "args = cli.build_parser().parse_args(['--log-format', 'json', 'check', '--config', 'unused.yaml'])\n"
        "cli._setup_logging(args.log_level, log_format=args.log_format)\n"
        "logging.getLogger('bastion.upstream').info('upstream %s ready', 'calc')\n"
        "logging.getLogger('bastion.auth').warning('refused Bearer abcdefghijklmnop')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        timeout=60,
        env=bastion_env(),
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    entries = [json.loads(line) for line in done.stderr.decode().splitlines()]
    assert [(e["logger"], e["message"]) for e in entries] == [
        ("bastion.upstream", "upstream calc ready"),
        ("bastion.auth", "refused Bearer [redacted]"),
    ]
    assert done.stdout == b""  # in stdio mode stdout carries the protocol only


def test_text_stays_the_default_log_format() -> None:
    from bastion.app import cli

    args = cli.build_parser().parse_args(["check", "--config", "unused.yaml"])
    assert args.log_format == "text"
