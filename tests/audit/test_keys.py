"""Signed by default: the first start makes an Ed25519 key next to the state store (mode 0600), says its
fingerprint, signs checkpoints by count, by time and at shutdown, and `bastion audit verify` needs only the
public key."""

from __future__ import annotations

import argparse
import json
import logging
import stat
from pathlib import Path

import anyio
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bastion.app.commands import audit as audit_cli
from bastion.app.runtime import build_runtime
from bastion.audit.config import DEFAULT_KEY_FILE
from bastion.audit.keys import audit_key
from bastion.audit.recorder import AuditRecorder
from bastion.audit.signing import Ed25519Key
from bastion.audit.sinks.sqlite import SqliteAuditSink
from bastion.audit.witness import StateWitness
from bastion.config import load_config
from bastion.pipeline.notice import Notice, NoticeKind
from bastion.state import EmbeddedStateStore
from tests.audit.conftest import event

pytestmark = pytest.mark.anyio


def _write_config(tmp_path: Path, **audit: object) -> Path:
    config = tmp_path / "etc" / "bastion.yaml"
    config.parent.mkdir(exist_ok=True)
    config.write_text(
        yaml.safe_dump(
            {
                "state": {"path": str(tmp_path / "state" / "bastion-state.db")},
                "cluster": {"replica_id": "gw-1"},
                "guardrails": {"enabled": False},
                "audit": {"sinks": [{"type": "sqlite", "path": str(tmp_path / "audit.db")}], **audit},
            }
        )
    )
    return config


async def _run_gateway(config: Path, notices: int) -> AuditRecorder:
    runtime = build_runtime(load_config(config), config_path=str(config))
    recorder = runtime.audit.recorder
    assert isinstance(recorder, AuditRecorder)
    await runtime.gateway.start()
    for i in range(notices):
        await recorder.on_notice(Notice(kind=NoticeKind.POLICY_RELOAD, detail={"n": i}))
    await runtime.gateway.aclose()
    return recorder


def _verify(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bastion")
    audit_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["audit", "verify", *argv])
    result: int = args.handler(args)
    return result


async def test_first_start_makes_a_private_ed25519_key_next_to_the_state_store_and_says_its_fingerprint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _write_config(tmp_path, checkpoint_every=5)
    with caplog.at_level(logging.INFO, logger="bastion.audit"):
        first = await _run_gateway(config, 12)
    key_file = tmp_path / "state" / DEFAULT_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.key is not None and first.key.algorithm == "ed25519"
    public = Ed25519Key.from_public_pem((tmp_path / "state" / (DEFAULT_KEY_FILE + ".pub")).read_bytes())
    assert public.key_id == first.key.key_id
    assert first.key.key_id in caplog.text and "BEGIN" not in caplog.text  # the fingerprint, never the key
    second = await _run_gateway(config, 3)  # a restart keeps the key
    assert second.key is not None and second.key.key_id == first.key.key_id


async def test_verify_after_a_default_run_checks_every_signature_with_the_public_key_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _write_config(tmp_path, checkpoint_every=5)
    await _run_gateway(config, 12)  # checkpoints at 5, 10, and 12 on shutdown
    (tmp_path / "state" / DEFAULT_KEY_FILE).unlink()  # the auditor's copy has the .pub file only
    assert await anyio.to_thread.run_sync(_verify, ["--config", str(config), "--json"]) == 0
    (chain,) = json.loads(capsys.readouterr().out)["chains"]
    assert (chain["ok"], chain["checkpoints"], chain["last_seq"], chain["warnings"]) == (True, 3, 12, [])


async def test_a_key_given_by_env_reference_is_used_and_no_key_file_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = Ed25519Key(private=_private())
    monkeypatch.setenv("BASTION_TEST_AUDIT_KEY", _pem(made))
    config = _write_config(tmp_path, signing_key="${env:BASTION_TEST_AUDIT_KEY}", signing_algorithm="ed25519")
    recorder = await _run_gateway(config, 2)
    assert recorder.key is not None and recorder.key.key_id == made.key_id
    assert not (tmp_path / "state" / DEFAULT_KEY_FILE).exists()


async def test_unsigned_makes_no_key(tmp_path: Path) -> None:
    loaded = load_config(_write_config(tmp_path, unsigned=True))
    assert audit_key(loaded.audit, loaded.state, create=True) is None
    assert not (tmp_path / "state" / DEFAULT_KEY_FILE).exists()


async def test_a_checkpoint_follows_checkpoint_seconds_after_the_first_uncovered_event(
    tmp_path: Path,
) -> None:
    async with EmbeddedStateStore(tmp_path / "state.db") as store:
        witness = StateWitness(store)
        recorder = AuditRecorder(
            [SqliteAuditSink(path=tmp_path / "audit.db")],
            replica="gw-1",
            key=Ed25519Key(private=_private()),
            checkpoint_every=1000,
            checkpoint_seconds=0.05,
            witnesses=[witness],
        )
        await recorder.open()
        await recorder.record(event(1), wait=True)
        await recorder.record(event(2), wait=True)
        with anyio.fail_after(5):
            while "gw-1" not in await witness.heads("sqlite"):
                await anyio.sleep(0.01)  # polling the witness: the condition itself, bounded above
        head = (await witness.heads("sqlite"))["gw-1"]
        assert head.seq == 2 and recorder.key is not None and recorder.key.verify(head)
        await recorder.aclose()


def _private() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _pem(key: Ed25519Key) -> str:
    from cryptography.hazmat.primitives import serialization

    private = key._private
    assert private is not None
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


async def test_processes_starting_at_once_share_one_key(tmp_path: Path) -> None:
    loaded = load_config(_write_config(tmp_path))
    made: list[str] = []

    def start() -> None:
        key = audit_key(loaded.audit, loaded.state, create=True)
        assert key is not None
        made.append(key.key_id)

    async with anyio.create_task_group() as group:
        for _ in range(8):
            group.start_soon(anyio.to_thread.run_sync, start)
    assert len(made) == 8 and len(set(made)) == 1
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [
        DEFAULT_KEY_FILE,
        DEFAULT_KEY_FILE + ".pub",
    ]
