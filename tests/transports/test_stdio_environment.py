"""A stdio upstream inherits only a minimal environment: Bastion's own credentials never reach a child process."""

from __future__ import annotations

from bastion.transports.stdio import StdioClientTransport, default_environment


def test_a_child_gets_the_minimal_environment_plus_only_what_its_config_names(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "should-never-leak")
    monkeypatch.setenv("BASTION_AUDIT_KEY", "should-never-leak-either")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    inherited = default_environment()
    assert inherited["PATH"] == "/usr/bin:/bin"
    assert "AWS_SECRET_ACCESS_KEY" not in inherited and "BASTION_AUDIT_KEY" not in inherited
    transport = StdioClientTransport("server", env={"API_TOKEN": "for-this-server-only"})
    assert transport._env["API_TOKEN"] == "for-this-server-only"
    assert "AWS_SECRET_ACCESS_KEY" not in transport._env
