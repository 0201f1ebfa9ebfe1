"""The embedded store's record cache: a repeated read costs no thread hop, and no write is ever missed.

`get_record` serves a body again only while SQLite's `data_version` is unchanged, so a commit by this store, by
another connection or by another process (the CLI revoking a key) is seen by the very next read.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bastion.auth.apikeys import ApiKeyStore
from bastion.auth.failures import failure_of
from bastion.errors import AuthError
from bastion.state import EmbeddedStateStore


def _count_reads(store: EmbeddedStateStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every read that reached SQLite (through the worker thread), by record id."""
    reads: list[str] = []
    real = store._get

    def counted(namespace: str, record_id: str) -> str | None:
        reads.append(record_id)
        return real(namespace, record_id)

    monkeypatch.setattr(store, "_get", counted)
    return reads


def _write_from_another_process(path: Path, sql: str, *params: Any) -> None:
    script = (
        "import json, sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
        "c.execute(sys.argv[2], json.loads(sys.argv[3])); c.commit()"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(path), sql, json.dumps(list(params))], check=True, timeout=30
    )


async def test_a_repeated_read_is_served_without_touching_sqlite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with EmbeddedStateStore(tmp_path / "s.db") as store:
        await store.put_record("keys", "k1", {"principal": "p"})
        reads = _count_reads(store, monkeypatch)
        for _ in range(5):
            assert await store.get_record("keys", "k1") == {"principal": "p"}
        assert await store.get_record("keys", "absent") is None
        assert await store.get_record("keys", "absent") is None
        assert reads == ["k1", "absent"]


async def test_a_cached_record_is_a_fresh_copy_each_time(tmp_path: Path) -> None:
    async with EmbeddedStateStore(tmp_path / "s.db") as store:
        await store.put_record("keys", "k1", {"roles": ["a"]})
        first = await store.get_record("keys", "k1")
        assert first is not None
        first["roles"].append("admin")
        assert await store.get_record("keys", "k1") == {"roles": ["a"]}


async def test_this_stores_writes_are_seen_by_the_next_read(tmp_path: Path) -> None:
    async with EmbeddedStateStore(tmp_path / "s.db") as store:
        await store.put_record("keys", "k1", {"v": 1})
        assert await store.get_record("keys", "k1") == {"v": 1}
        await store.put_record("keys", "k1", {"v": 2})
        assert await store.get_record("keys", "k1") == {"v": 2}
        assert await store.replace_record("keys", "k1", {"v": 3}, expected={"v": 2})
        assert await store.get_record("keys", "k1") == {"v": 3}
        assert await store.delete_record("keys", "k1")
        assert await store.get_record("keys", "k1") is None


async def test_another_processes_writes_are_seen_by_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with EmbeddedStateStore(path) as store:
        await store.put_record("keys", "k1", {"v": 1})
        assert await store.get_record("keys", "k1") == {"v": 1}
        assert await store.get_record("keys", "new") is None
        _write_from_another_process(
            path, "UPDATE records SET body = ? WHERE namespace = 'keys' AND id = 'k1'", '{"v": 2}'
        )
        assert await store.get_record("keys", "k1") == {"v": 2}
        _write_from_another_process(
            path, "INSERT INTO records (namespace, id, body) VALUES ('keys', 'new', ?)", '{"v": 9}'
        )
        assert await store.get_record("keys", "new") == {"v": 9}
        _write_from_another_process(path, "DELETE FROM records WHERE id = 'k1'")
        assert await store.get_record("keys", "k1") is None


async def test_a_key_revoked_by_the_cli_is_refused_at_the_next_request(tmp_path: Path) -> None:
    state = tmp_path / "state.db"
    config = tmp_path / "bastion.yaml"
    config.write_text(json.dumps({"servers": {}, "state": {"path": str(state)}}))
    async with EmbeddedStateStore(state) as store:
        keys = ApiKeyStore(store)
        key, info = await keys.create("ci-bot", ["ci"])
        for _ in range(3):  # served from the cache after the first
            assert (await keys.verify(key)).name == "ci-bot"
        done = subprocess.run(
            [sys.executable, "-m", "bastion.cli", "keys", "revoke", "--config", str(config), info.key_id],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        with pytest.raises(AuthError) as refused:
            await keys.verify(key)
        assert str(failure_of(refused.value)) == "revoked"


async def test_an_in_memory_store_reads_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    async with EmbeddedStateStore(":memory:") as store:
        await store.put_record("keys", "k1", {"v": 1})
        reads = _count_reads(store, monkeypatch)
        await store.get_record("keys", "k1")
        await store.get_record("keys", "k1")
        assert reads == ["k1", "k1"]
