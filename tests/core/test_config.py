"""Config loading: references, validation errors that name the bad key, and `bastion check`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bastion.config import load_config, parse_config
from bastion.errors import ConfigError
from tests.peers import bastion_env


def test_env_and_file_references_are_resolved_and_kept_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("REMOTE_TOKEN", "s3cret-token")
    (tmp_path / "key.txt").write_text("file-secret\n")
    (tmp_path / "b.yaml").write_text(
        "servers:\n  remote:\n    transport: streamable-http\n    url: http://127.0.0.1:9/mcp\n"
        "    headers: {Authorization: 'Bearer ${env:REMOTE_TOKEN}', X-Key: '${file:key.txt}'}\n"
    )
    config = load_config(tmp_path / "b.yaml")
    headers = config.servers["remote"].headers
    assert headers["Authorization"].get_secret_value() == "Bearer s3cret-token"
    assert headers["X-Key"].get_secret_value() == "file-secret"
    assert "s3cret" not in repr(config) and "s3cret" not in config.model_dump_json()


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"servers": {"Bad_Name": {"transport": "stdio", "command": "x"}}}, "servers"),
        ({"servers": {"a": {"transport": "stdio"}}}, "servers.a"),
        ({"servers": {"a": {"transport": "carrier-pigeon", "command": "x"}}}, "servers.a.transport"),
        ({"servers": {"a": {"transport": "stdio", "command": "x", "bogus": 1}}}, "servers.a.bogus"),
        ({"listen": {"port": 99999}}, "listen.port"),
        ({"servers": {"a": {"transport": "sse", "url": "ftp://x"}}}, "servers.a"),
    ],
)
def test_invalid_config_names_the_bad_key(data, path):
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert info.value.path == path


def test_missing_env_reference_names_the_key(monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(ConfigError) as info:
        parse_config(
            {"servers": {"a": {"transport": "stdio", "command": "x", "env": {"K": "${env:NOPE_NOT_SET}"}}}}
        )
    assert info.value.path == "servers.a.env.K"


def test_bastion_check_prints_the_normalized_config_and_fails_on_errors(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(
        "servers:\n  time: {transport: stdio, command: python, args: ['-m', 'mcp_server_time']}\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "check", "--config", str(good)],
        capture_output=True,
        text=True,
        env=bastion_env(),
        check=True,
    )
    normalized = json.loads(out.stdout)
    assert normalized["servers"]["time"]["protocol"] == "auto"
    assert normalized["listen"] == {
        "host": "127.0.0.1",
        "port": 8765,
        "allowed_hosts": [],
        "allowed_origins": [],
    }
    bad = tmp_path / "bad.yaml"
    bad.write_text("servers:\n  time: {transport: stdio}\n")
    out = subprocess.run(
        [sys.executable, "-m", "bastion.cli", "check", "--config", str(bad)],
        capture_output=True,
        text=True,
        env=bastion_env(),
    )
    assert out.returncode == 2 and "servers.time" in out.stderr
