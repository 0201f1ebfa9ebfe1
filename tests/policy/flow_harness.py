"""Real peers for flow-policy tests: server-everything (private env), mcp-server-fetch against a loopback page
carrying an injection (untrusted), and the mailbox sink (egress), behind `build_runtime()`."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from bastion.app.runtime import Runtime, build_runtime
from bastion.config import parse_config
from tests.guard.harness import Recorder
from tests.peers import EVERYTHING_JS, NODE, PYTHON, ROOT
from tests.servers import shady

CUSTOMER_EMAIL = shady.EMAIL
"""The private value: server-everything's `get-env` returns it (PII, flagged and released by default)."""
EXFILTRATION_RULE = {
    "id": "no-exfiltration",
    "when": 'session.tainted("private") && session.tainted("untrusted") && tool.labels.exists(l, l == "egress")',
    "action": "deny",
}


@contextlib.contextmanager
def injection_page() -> Iterator[str]:
    """A loopback HTTP server whose every page is plain text carrying an injection; yields its page URL."""
    body = shady.INJECTION.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/issue/42.txt"
    finally:
        server.shutdown()
        server.server_close()


def servers(outbox: Path) -> dict[str, Any]:
    """The three real upstreams (handshake era: no `server/discover` probe to wait out)."""
    return {
        "everything": {
            "transport": "stdio",
            "command": NODE,
            "args": [str(EVERYTHING_JS), "stdio"],
            "env": {"CUSTOMER_CONTACT": CUSTOMER_EMAIL},
            "protocol": "legacy",
        },
        "fetch": {
            "transport": "stdio",
            "command": PYTHON,
            "args": ["-m", "mcp_server_fetch", "--allow-private-ips", "--ignore-robots-txt"],
            "protocol": "legacy",
        },
        "mail": {
            "transport": "stdio",
            "command": PYTHON,
            "args": [str(ROOT / "tests/servers/mailbox.py")],
            "env": {"MAILBOX_OUT": str(outbox)},
            "protocol": "legacy",
        },
    }


def flow_config(tmp_path: Path, flow: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A bastion.yaml document: the three peers, the flow section, guardrails letting the loopback fetch through."""
    return {
        "servers": servers(tmp_path / "outbox.jsonl"),
        "state": {"path": str(tmp_path / "state.db")},
        "audit": {"sinks": [{"type": "sqlite", "path": str(tmp_path / "audit.db")}]},
        "policy": {"default": "allow", "flow": {"enabled": True, **flow}},
        "guardrails": {
            # The page is on loopback (an SSRF target) and its injection should reach the agent: the chain
            # under test is the one where each single-message check lets things through.
            "overrides": [{"servers": ["fetch"], "actions": {"arguments": "flag", "injection": "flag"}}]
        },
        **extra,
    }


@contextlib.asynccontextmanager
async def flow_gateway(document: dict[str, Any]) -> AsyncIterator[tuple[Runtime, Recorder]]:
    runtime = build_runtime(parse_config(document))
    recorder = Recorder()
    runtime.gateway.observers.append(recorder)
    await runtime.gateway.start()
    try:
        yield runtime, recorder
    finally:
        await runtime.gateway.aclose()


def sent(tmp_path: Path) -> list[str]:
    path = tmp_path / "outbox.jsonl"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []
