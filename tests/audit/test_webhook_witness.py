"""The webhook witness against a real HTTP server on 127.0.0.1: every checkpoint head is POSTed as JSON; when the
receiver fails, a strict recorder keeps its sink from checkpointing ahead of the witness (and retries), a relaxed
one checkpoints anyway; the URL's token never reaches the log; `verify` does not read the write-only webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bastion.audit.chain import Anchor
from bastion.audit.config import AuditConfig
from bastion.audit.recorder import AuditRecorder
from bastion.audit.signing import HmacKey
from bastion.audit.sinks.sqlite import SqliteAuditSink
from bastion.audit.witness import WebhookWitness, build_witnesses
from tests.audit.conftest import event

pytestmark = pytest.mark.anyio

TOKEN = "webhook-token-s3cret"


class Receiver(ThreadingHTTPServer):
    """Keeps every JSON body POSTed to it and answers `status`."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[dict[str, Any]] = []
        self.status = 204

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/heads?token={TOKEN}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.server.status < 300:
            self.server.bodies.append(json.loads(body))
        self.send_response(self.server.status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def _record(tmp_path: Path, url: str, mode: str, n: int) -> tuple[AuditRecorder, list[Anchor]]:
    sink = SqliteAuditSink(path=tmp_path / f"{mode}.db")
    recorder = AuditRecorder(
        [sink],
        replica="r1",
        mode="strict" if mode == "strict" else "relaxed",
        key=HmacKey("k" * 32),
        checkpoint_every=5,
        batch_size=1,
        witnesses=[WebhookWitness(url, timeout_seconds=10)],
    )
    await recorder.open()
    for i in range(1, n + 1):
        await recorder.record(event(i), wait=True)
    await recorder.aclose()
    async with SqliteAuditSink(path=tmp_path / f"{mode}.db") as reader:
        anchors = [a for a in await reader.anchors("r1") if a.kind == "checkpoint"]
    return recorder, anchors


async def test_every_checkpoint_head_is_posted_as_json_to_the_webhook(
    receiver: Receiver, tmp_path: Path
) -> None:
    recorder, checkpoints = await _record(tmp_path, receiver.url, "strict", 12)
    assert recorder.witness_failures == 0
    assert [b["seq"] for b in receiver.bodies] == [5, 10, 12]  # every 5 events, and the final one on close
    assert all(b["sink"] == "sqlite" and b["replica"] == "r1" for b in receiver.bodies)
    # What the receiver holds is exactly the signed checkpoints the sink holds.
    assert [Anchor.from_dict(b) for b in receiver.bodies] == checkpoints


async def test_a_failing_webhook_holds_back_a_strict_sinks_checkpoints_but_not_a_relaxed_ones(
    receiver: Receiver, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 503
    strict, strict_checkpoints = await _record(tmp_path, receiver.url, "strict", 7)
    relaxed, relaxed_checkpoints = await _record(tmp_path, receiver.url, "relaxed", 7)
    # strict: the checkpoint at 5 stays due and is tried again on close; no sink checkpoint is ahead of it
    assert strict.witness_failures == 2 and strict_checkpoints == []
    assert relaxed.witness_failures == 2 and [a.seq for a in relaxed_checkpoints] == [5, 7]
    assert (
        "audit witness webhook http://127.0.0.1:" in caplog.text
        and "failed: WitnessUnavailable" in caplog.text
    )
    assert TOKEN not in caplog.text
    receiver.status = 204
    strict, strict_checkpoints = await _record(tmp_path, receiver.url, "strict", 3)  # the same sink, back up
    assert [a.seq for a in strict_checkpoints] == [10] == [b["seq"] for b in receiver.bodies]


async def test_an_unreachable_webhook_is_a_witness_failure_naming_it_without_its_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import socket

    with socket.socket() as held:  # bound, not listening: the connection is refused
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}/heads?token={TOKEN}"
        recorder, checkpoints = await _record(tmp_path, url, "relaxed", 2)
    assert recorder.witness_failures == 1 and [a.seq for a in checkpoints] == [2]
    assert "webhook http://127.0.0.1" in caplog.text and TOKEN not in caplog.text


def test_the_webhook_is_configured_under_audit_witnesses_and_verify_leaves_it_out() -> None:
    config = AuditConfig.model_validate(
        {
            "witnesses": [
                {"type": "state"},
                {"type": "webhook", "url": "https://w.example/h", "timeout_seconds": 3},
            ]
        }
    )
    (webhook,) = build_witnesses(config.witnesses, None)  # no state store here: the state witness is left out
    assert isinstance(webhook, WebhookWitness) and webhook.name == "webhook https://w.example/h"
    assert build_witnesses(config.witnesses, None, readable_only=True) == []
