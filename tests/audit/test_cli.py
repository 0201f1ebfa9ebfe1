"""`bastion audit tail | search | export | verify | prune` through their argparse registration (and `tail -f` as a
real subprocess)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import yaml

from bastion.app.commands import audit as audit_cli
from bastion.audit.sinks.jsonl import JsonlAuditSink
from bastion.audit.sinks.sqlite import SqliteAuditSink
from tests.audit.conftest import write_events
from tests.peers import bastion_env

pytestmark = pytest.mark.anyio


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bastion")
    audit_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


@pytest.fixture
async def trail(tmp_path: Path) -> Path:
    """A config with a SQLite and a JSON Lines sink holding the same 30 events."""
    config = tmp_path / "bastion.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "audit": {
                    "signing_key": "a-test-signing-key-of-enough-bytes",
                    "sinks": [
                        {"type": "sqlite", "path": str(tmp_path / "audit.db")},
                        {"type": "jsonl", "name": "files", "path": str(tmp_path / "audit.jsonl")},
                    ],
                }
            }
        )
    )
    async with (
        SqliteAuditSink(path=tmp_path / "audit.db") as s,
        JsonlAuditSink(path=tmp_path / "audit.jsonl") as j,
    ):
        for sink in (s, j):
            await write_events(sink, 30)
    return config


async def _cli(argv: list[str]) -> int:
    return await anyio.to_thread.run_sync(run, argv)  # the CLI runs its own event loop


async def test_tail_prints_the_last_events_in_order(trail: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await _cli(["audit", "tail", "--config", str(trail), "-n", "3", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["seq"] for e in lines] == [28, 29, 30]
    assert await _cli(["audit", "tail", "--config", str(trail), "-n", "2", "--sink", "files"]) == 0
    human = capsys.readouterr().out.splitlines()
    assert len(human) == 2 and "tools/call calc__" in human[0] and "id=ev-00029" in human[0]


async def test_search_applies_every_filter(trail: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "audit",
        "search",
        "--config",
        str(trail),
        "--json",
        "--principal",
        "alice",
        "--tool",
        "calc__add",
        "--decision",
        "allow",
        "--since",
        "2023-11-14T22:13:25Z",
        "--until",
        "1700000025",
    ]
    assert await _cli(argv) == 0
    found = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["seq"] for e in found] == [23, 19, 17, 13, 11, 7]
    assert all(e["principal"] == "alice" and e["target"] == "add" for e in found)


async def test_export_writes_csv_and_jsonl_oldest_first(trail: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    assert (
        await _cli(
            ["audit", "export", "--config", str(trail), "--format", "csv", "-o", str(out), "--server", "calc"]
        )
        == 0
    )
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 30 and rows[0]["seq"] == "1" and rows[0]["arguments"] == '{"a":1,"b":2}'
    assert rows[0]["time"] == "2023-11-14T22:13:21.000Z" and rows[0]["roles"] == "dev"
    assert (
        await _cli(
            ["audit", "export", "--config", str(trail), "-o", str(tmp_path / "o.jsonl"), "--decision", "deny"]
        )
        == 0
    )
    assert [json.loads(x)["seq"] for x in (tmp_path / "o.jsonl").read_text().splitlines()] == [
        5,
        10,
        15,
        20,
        25,
        30,
    ]


async def test_verify_passes_then_names_the_first_bad_event(
    trail: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _cli(["audit", "verify", "--config", str(trail), "--all-sinks"]) == 0
    out = capsys.readouterr().out
    assert "sqlite: chain r1: OK (30 events" in out and "files: chain r1: OK (30 events" in out
    db = sqlite3.connect(tmp_path / "audit.db")
    with db:
        db.execute("UPDATE audit_events SET content = replace(content, '\"b\":2', '\"b\":7') WHERE seq = 17")
    db.close()
    assert await _cli(["audit", "verify", "--config", str(trail), "--json"]) == 1
    (report,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    chain = report["chains"][0]
    assert (report["ok"], chain["bad_seq"], chain["problem"]) == (
        False,
        17,
        "content does not match its hash (edited)",
    )
    assert chain["bad_event_id"].startswith("ev-00017")


async def test_prune_leaves_a_signed_anchor_and_verify_still_passes(
    trail: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await _cli(["audit", "prune", "--config", str(trail), "--before", "1700000010.5"]) == 0
    assert "pruned up to seq 10 (signed anchor)" in capsys.readouterr().out
    assert await _cli(["audit", "verify", "--config", str(trail)]) == 0
    assert "20 events, seq 11..30" in capsys.readouterr().out
    assert await _cli(["audit", "prune", "--config", str(trail)]) == 2  # no retention, no --before


async def test_an_unknown_sink_is_a_usage_error(trail: Path) -> None:
    assert await _cli(["audit", "tail", "--config", str(trail), "--sink", "nope"]) == 2


@pytest.mark.integration
async def test_tail_follow_prints_new_events_as_they_are_written(trail: Path, tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bastion.cli", "audit", "tail", "-f", "-n", "1", "--config", str(trail)],
        stdout=subprocess.PIPE,
        env=bastion_env(),
    )
    try:
        assert process.stdout is not None
        stdout = process.stdout
        with anyio.fail_after(30):
            first = await anyio.to_thread.run_sync(stdout.readline)
            assert b"id=ev-00030" in first
            async with SqliteAuditSink(path=tmp_path / "audit.db") as sink:
                await write_events(sink, 2, start=500)
            lines = [await anyio.to_thread.run_sync(stdout.readline) for _ in range(2)]
        assert b"id=ev-00500" in lines[0] and b"id=ev-00501" in lines[1]
    finally:
        process.kill()
        process.wait()


async def test_an_auditor_verifies_ed25519_checkpoints_with_the_public_key_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from bastion.audit.keys import audit_key
    from bastion.audit.recorder import AuditRecorder
    from bastion.config import load_config
    from bastion.pipeline.notice import Notice, NoticeKind

    private = Ed25519PrivateKey.generate()
    (tmp_path / "key.pem").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (tmp_path / "pub.pem").write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    sinks = [{"type": "sqlite", "path": str(tmp_path / "audit.db")}]
    # No witness here: the checkpoints in the sink alone are what this test is about.
    gateway_config = tmp_path / "gateway.yaml"
    gateway_config.write_text(
        yaml.safe_dump(
            {
                "audit": {
                    "signing_key": "${file:key.pem}",
                    "signing_algorithm": "ed25519",
                    "checkpoint_every": 4,
                    "witnesses": [],
                    "sinks": sinks,
                }
            }
        )
    )
    loaded = load_config(gateway_config)
    key = audit_key(loaded.audit, loaded.state, create=True)
    recorder = AuditRecorder.from_config(loaded.audit, replica="gw-1", key=key)
    for i in range(10):
        await recorder.on_notice(Notice(kind=NoticeKind.APPROVAL, detail={"n": i}))
    await recorder.aclose()
    auditor_config = tmp_path / "auditor.yaml"  # no secret at all
    auditor_config.write_text(yaml.safe_dump({"audit": {"sinks": sinks, "witnesses": []}}))
    argv = ["audit", "verify", "--config", str(auditor_config), "--json"]
    assert await _cli([*argv, "--public-key", str(tmp_path / "pub.pem")]) == 0
    (chain,) = json.loads(capsys.readouterr().out)["chains"]
    assert (chain["ok"], chain["checkpoints"], chain["last_seq"]) == (True, 3, 10)  # at 4, 8 and on close
    assert await _cli(argv) == 0  # without a key: the chain verifies, the signatures are reported unchecked
    (chain,) = json.loads(capsys.readouterr().out)["chains"]
    assert chain["checkpoints"] == 0 and len(chain["warnings"]) == 3


HOSTILE_URI = "file:///x\x1b[2K\r2026-01-01T00:00:00Z allow    admin tools/call ok\nnext\u202egnp.exe\x9b31m"
"""A resource URI that, printed raw, erases the line and forges an "allow" line, then reverses text."""


async def test_tail_and_search_escape_control_and_bidi_characters_but_json_stays_exact(
    trail: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bastion.audit.sinks import EncodedEvent
    from tests.audit.conftest import event

    hostile = event(999, target=HOSTILE_URI, method="resources/read", principal="eve\x1b]0;title\x07")
    async with SqliteAuditSink(path=tmp_path / "audit.db") as sink:
        await sink.write("r1", [EncodedEvent.of(hostile)])
    for argv in (["tail", "-n", "1"], ["search", "--session", "s1", "--limit", "1"]):
        assert await _cli(["audit", *argv, "--config", str(trail)]) == 0
        out = capsys.readouterr().out
        (line,) = out.splitlines()
        assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in line)
        assert "\\x1b[2K\\x0d2026-01-01T00:00:00Z allow" in line and "\\u202egnp.exe\\x9b31m" in line
        assert "eve\\x1b]0;title\\x07" in line
    assert await _cli(["audit", "tail", "-n", "1", "--json", "--config", str(trail)]) == 0
    exact = json.loads(capsys.readouterr().out)
    assert (exact["target"], exact["principal"]) == (HOSTILE_URI, "eve\x1b]0;title\x07")


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound on 127.0.0.1 that nobody listens on: connecting is refused, and no one else can take it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


async def test_verify_names_an_unreachable_redis_witness_in_one_line_without_its_password(
    trail: Path, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    config = yaml.safe_load(trail.read_text())
    config["state"] = {"backend": "redis", "url": f"redis://:hunter2-redis@127.0.0.1:{closed_port}/0"}
    trail.write_text(yaml.safe_dump(config))
    assert await _cli(["audit", "verify", "--config", str(trail)]) == audit_cli.UNREACHABLE
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith(f"error: cannot reach the state store (redis://127.0.0.1:{closed_port}/0): ")
    assert "hunter2" not in captured.err + captured.out and "Traceback" not in captured.err


async def test_verify_and_tail_name_an_unreachable_postgres_sink_in_one_line_without_its_password(
    trail: Path, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    config = yaml.safe_load(trail.read_text())
    url = f"postgresql://bastion:pg-secret-pw@127.0.0.1:{closed_port}/audit?sslmode=disable"
    config["audit"]["sinks"] = [{"type": "postgres", "url": url}]
    trail.write_text(yaml.safe_dump(config))
    for command in ("verify", "tail"):
        assert await _cli(["audit", command, "--config", str(trail)]) == audit_cli.UNREACHABLE
        captured = capsys.readouterr()
        (line,) = captured.err.splitlines()
        where = f"postgresql://127.0.0.1:{closed_port}/audit"
        assert line.startswith(f"error: cannot reach audit sink postgres ({where}): ")
        assert "pg-secret-pw" not in captured.err + captured.out and "Traceback" not in captured.err
