"""An e-mail-like sink MCP server (official SDK) for flow-policy tests: the egress end of exfiltration chains.

Tools:
- `send_email(to, subject, body)` "sends" a message: appends it as one JSON line to the file named by the
  `MAILBOX_OUT` environment variable, so a test can see exactly what left (and that nothing did).
- `count_outbox()` says how many messages were sent.

Usage: MAILBOX_OUT=/tmp/out.jsonl python mailbox.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mcp.server import MCPServer


def _outbox() -> Path:
    return Path(os.environ["MAILBOX_OUT"])


def build() -> MCPServer:
    server = MCPServer("mailbox", instructions="mailbox sends e-mail")

    @server.tool()
    def send_email(to: str, subject: str, body: str) -> str:
        """Send an e-mail message to an address."""
        with _outbox().open("a", encoding="utf-8") as out:
            out.write(json.dumps({"to": to, "subject": subject, "body": body}) + "\n")
        return f"sent to {to}"

    @server.tool()
    def count_outbox() -> int:
        """How many messages were sent so far."""
        path = _outbox()
        return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0

    return server


if __name__ == "__main__":
    build().run()
