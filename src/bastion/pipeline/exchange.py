"""`Exchange`: one client message on its way through the pipeline, and its response on the way back.

Stages read it and return verdicts; the chain runner applies the verdicts to it. Audit and metrics observe the
finished exchange. It is the only thing a stage sees: no transport, no socket, no upstream handle.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bastion.guard.finding import Finding
from bastion.pipeline.verdicts import Decision
from bastion.types import ANONYMOUS, Principal

Asker = Callable[[str], Awaitable[bool]]
"""Asks a human a yes/no question (elicitation or the approvals queue); True means approved."""


def _renew_exchange_ids() -> None:
    """32 hex digits like a random id, without a system call per exchange: a random prefix per process (renewed
    in a forked child, so workers never share it) and a counter. Ids stay unique across replicas (flow graphs and
    audit records of several processes meet in one store)."""
    global _next_exchange_id
    _next_exchange_id = map(f"{os.urandom(8).hex()}{{:016x}}".format, itertools.count(1)).__next__


_next_exchange_id: Callable[[], str]
_renew_exchange_ids()
os.register_at_fork(after_in_child=_renew_exchange_ids)


@dataclass(slots=True, kw_only=True)
class SessionInfo:
    """What the pipeline may know about the client session a message came from."""

    session_id: str
    """Bastion's own session id (never an upstream's)."""
    transport: str
    """`streamable-http`, `sse`, `stdio` or `memory`."""
    principal: Principal = ANONYMOUS
    """Who is calling (set by authentication before any stage runs)."""
    protocol_version: str = ""
    """Negotiated (handshake era) or per-request (2026-07-28) protocol version."""
    client_name: str = ""
    """Self-reported clientInfo.name: informative only, never trusted for security."""
    client_version: str = ""
    """Self-reported clientInfo.version."""
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    """Capabilities the client declared."""
    remote: str = ""
    """Client address, for audit."""


@dataclass(slots=True, kw_only=True)
class Exchange:
    """A request and (later) its response, with every decision taken on them."""

    session: SessionInfo
    """The client session it came from."""
    method: str
    """JSON-RPC method, e.g. `tools/call`."""
    params: dict[str, Any]
    """Request params as the next stage sees them (a `Mutate` replaces them)."""
    request_id: Any = None
    """The client's JSON-RPC id (None for notifications)."""
    server: str | None = None
    """Upstream server the call is routed to (None for calls Bastion answers itself)."""
    target: str | None = None
    """Upstream-local tool or prompt name, or resource URI."""
    exchange_id: str = field(default_factory=lambda: _next_exchange_id())
    """Unique id of this exchange (the audit event id)."""
    trace_id: str = ""
    """W3C trace id when tracing is on."""
    started: float = field(default_factory=time.perf_counter)
    """perf_counter() when the request arrived."""
    upstream_seconds: float = 0.0
    """Time spent waiting on the upstream."""
    result: dict[str, Any] | None = None
    """Response result (set before the response path runs); a `Mutate` replaces it."""
    error: dict[str, Any] | None = None
    """JSON-RPC error object when the call failed or was refused."""
    decisions: list[Decision] = field(default_factory=list)
    """Every stage's verdict, in order."""
    outcome: str = "allow"
    """Final decision for audit: `allow`, `deny`, `error`, `flag`, `redact`."""
    asker: Asker | None = None
    """How to ask a human; None when nobody can be asked (then `Ask` means reject)."""
    ask_client: bool = False
    """The pending `Ask` opted into asking the calling client's user (see `Ask.ask_client`)."""
    annotations: dict[str, Any] = field(default_factory=dict)
    """Scratch space for stages, keyed by stage name (e.g. the matched policy rule)."""

    @property
    def findings(self) -> list[Finding]:
        """Every finding recorded on this exchange, in order."""
        return [f for d in self.decisions for f in d.findings]

    @property
    def arguments(self) -> dict[str, Any]:
        """`tools/call` arguments (empty for other methods)."""
        args = self.params.get("arguments")
        return args if isinstance(args, dict) else {}
