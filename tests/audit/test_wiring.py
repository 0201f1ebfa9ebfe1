"""The recorder in a runtime built from config: first observer, opened and closed with the gateway, and the
HTTP layer's authentication failures recorded as notices without any credential."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from bastion.app.http import build_http_app
from bastion.app.runtime import build_runtime
from bastion.audit.recorder import AuditRecorder
from bastion.audit.sinks import AuditQuery
from bastion.audit.sinks.sqlite import SqliteAuditSink
from bastion.auth.apikeys import ApiKeyStore
from bastion.config import parse_config

pytestmark = pytest.mark.anyio


def _config(tmp_path: Path, **audit: object) -> object:
    return parse_config(
        {
            "auth": {"enabled": True},
            "state": {"path": str(tmp_path / "state.db")},
            "cluster": {"replica_id": "gw-test"},
            "guardrails": {"enabled": False},  # not what is tested here, and its matcher is slow to compile
            "audit": {"sinks": [{"type": "sqlite", "path": str(tmp_path / "audit.db")}], **audit},
        }
    )


async def test_the_recorder_is_the_first_observer_and_follows_the_gateway_lifecycle(tmp_path: Path) -> None:
    runtime = build_runtime(_config(tmp_path))  # type: ignore[arg-type]
    recorder = runtime.audit.recorder
    assert isinstance(recorder, AuditRecorder) and runtime.gateway.observers[0] is recorder
    assert recorder.replica == "gw-test" and recorder.strict
    await runtime.gateway.start()
    assert recorder.healthy
    await runtime.gateway.aclose()
    assert recorder._closed


async def test_audit_can_be_switched_off(tmp_path: Path) -> None:
    runtime = build_runtime(_config(tmp_path, enabled=False))  # type: ignore[arg-type]
    assert runtime.audit is None
    assert not any(isinstance(o, AuditRecorder) for o in runtime.gateway.observers)


async def test_http_authentication_failures_become_audit_events_without_the_credential(
    tmp_path: Path,
) -> None:
    runtime = build_runtime(_config(tmp_path))  # type: ignore[arg-type]
    app = build_http_app(runtime, host="127.0.0.1", port=8765)
    token = "bst_this-is-not-a-real-key-but-still-secret"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as client:
        assert (await client.post("/mcp", json={})).status_code == 401
        assert (
            await client.post("/mcp", json={}, headers={"authorization": f"Bearer {token}"})
        ).status_code == 401
    recorder = runtime.audit.recorder
    await runtime.gateway.aclose()  # waits for notices emitted with emit_soon, then closes the recorder
    async with SqliteAuditSink(path=tmp_path / "audit.db") as reader:
        events = await reader.search(AuditQuery(kind="auth_failure", order="asc"))
    assert sorted((e.detail["reason"], e.detail["path"], e.severity) for e in events) == [
        ("malformed", "/mcp", "warning"),  # not a well-formed bst_ key
        ("missing", "/mcp", "warning"),
    ]
    assert all(e.remote == "127.0.0.1" for e in events)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("audit.db"))
    assert token.encode() not in raw and b"this-is-not-a-real-key" not in raw
    assert recorder.lost == 0


async def test_an_expired_key_is_an_api_key_expiry_event_once_and_its_refusals_name_the_key(
    tmp_path: Path,
) -> None:
    runtime = build_runtime(_config(tmp_path))  # type: ignore[arg-type]
    an_hour_ago = ApiKeyStore(runtime.store, clock=lambda: time.time() - 3600)
    expired, info = await an_hour_ago.create("alice", ["reader"], expires_in=60)
    revoked, revoked_info = await ApiKeyStore(runtime.store).create("bob")
    await ApiKeyStore(runtime.store).revoke(revoked_info.key_id)
    app = build_http_app(runtime, host="127.0.0.1", port=8765)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as client:
        for key in (expired, expired, revoked):
            assert (await client.post("/mcp", json={}, headers={"x-api-key": key})).status_code == 401
    await runtime.gateway.aclose()
    async with SqliteAuditSink(path=tmp_path / "audit.db") as reader:
        failures = await reader.search(AuditQuery(kind="auth_failure", order="asc"))
        key_events = await reader.search(AuditQuery(kind="api_key", order="asc"))
    assert sorted((e.detail["reason"], e.key_id) for e in failures) == [
        ("expired", info.key_id),
        ("expired", info.key_id),
        ("revoked", revoked_info.key_id),
    ]
    (expiry,) = key_events  # the second presentation of the expired key is no second expiry
    assert (expiry.key_id, expiry.principal, expiry.roles, expiry.remote) == (
        info.key_id,
        "alice",
        ("reader",),
        "127.0.0.1",
    )
    assert {k: expiry.detail[k] for k in ("action", "keyId", "by", "via", "expiresAt")} == {
        "action": "expired",
        "keyId": info.key_id,
        "by": "bastion",
        "via": "auth",
        "expiresAt": info.expires_at,
    }
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("audit.db"))
    for key in (expired, revoked):
        assert key[len("bst_") + 17 :].encode() not in raw  # the secret half never reaches the trail
