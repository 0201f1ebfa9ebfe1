"""Running the official conformance suite (`@modelcontextprotocol/conformance`) and reading its results."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.peers import NODE, bastion_env, free_port

RUN_DIR = re.compile(r"^server-(?P<name>.+)-\d{4}-\d\d-\d\dT[\d-]+Z$")
NOT_TESTABLE = "Not testable"
"""How the suite marks a check it could not run for want of its own fixture's diagnostic tools."""


def wait_http(url: str, proc: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return  # it answers: a 4xx to a bare GET is an answer
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(url)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def run_suite(binary: Path, url: str, out: Path, *extra: str) -> tuple[dict[str, tuple[int, int]], Path]:
    env = {**os.environ, "PATH": f"{Path(NODE).parent}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        [str(binary), "server", "--url", url, "-o", str(out), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    results: dict[str, tuple[int, int]] = {}
    for checks in out.glob("server-*/checks.json"):
        match = RUN_DIR.match(checks.parent.name)
        assert match, checks
        statuses = [c.get("status") for c in json.loads(checks.read_text())]
        results[match["name"]] = (statuses.count("SUCCESS"), statuses.count("FAILURE"))
    assert results, done.stdout[-2000:] + done.stderr[-2000:]
    return results, out


def failed_checks(out: Path, scenario: str) -> list[dict[str, str]]:
    failed = []
    for checks in out.glob(f"server-{scenario}-*/checks.json"):
        failed += [c for c in json.loads(checks.read_text()) if c.get("status") == "FAILURE"]
    return failed


def passing(out: Path, results: dict[str, tuple[int, int]]) -> set[str]:
    """Scenarios with no failed check, a check the suite marks "not testable" not counting as failed."""
    return {
        name
        for name, (_, failed) in results.items()
        if failed == 0 or all(NOT_TESTABLE in c.get("errorMessage", "") for c in failed_checks(out, name))
    }


@contextlib.contextmanager
def serving(command: list[str], ready_url: str, **popen: Any) -> Iterator[None]:
    """Run `command` until the block ends, once `ready_url` answers."""
    proc = subprocess.Popen(command, **{"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, **popen})
    try:
        wait_http(ready_url, proc)
        yield
    finally:
        stop(proc)


@contextlib.contextmanager
def bastion_in_front(tmp: Path, name: str, server: dict[str, Any]) -> Iterator[str]:
    """`bastion serve` with one upstream and no name prefix (the suite calls fixed names); yields its MCP URL."""
    port = free_port()
    config = {
        "listen": {"host": "127.0.0.1", "port": port},
        "routing": {"namespace": False},
        "state": {"path": str(tmp / "state.db")},
        "audit": {"sinks": [{"type": "sqlite", "path": str(tmp / "audit.db")}]},
        "servers": {name: server},
    }
    path = tmp / "bastion.yaml"
    path.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "bastion.cli", "serve", "--config", str(path)]
    with (
        (tmp / "bastion.log").open("wb") as log,
        serving(
            command,
            f"http://127.0.0.1:{port}/readyz",
            env=bastion_env(),
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
        ),
    ):
        yield f"http://127.0.0.1:{port}/mcp"
