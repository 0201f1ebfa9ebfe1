"""Correlation on one upstream connection: what each upstream message is tied to, in this one module.

`Correlation` holds the requests in flight by Bastion's own upstream id (a response settles exactly the request
with its id), the progress tokens rewritten for them (a progress notification reaches exactly the caller whose
token it carries), and answers, by the association rules (`association.py`), which single downstream call a
server->client request belongs to. `Pending` is one request waiting for its answer; `expire` is its timer (it also
interrupts a send that blocks, so a request is bounded whatever the upstream does); `transport_failure` tells an
error a transport made up (the exchange failed) from the server's own error, because only the former counts
against the circuit breaker.

Rules:
- Upstream ids are Bastion's own integers, unique per connection: ids of different clients never collide.
- A response with an id not in flight (unknown, answered, timed out, cancelled) is dropped.
- Progress tokens are rewritten to connection-unique tokens and mapped back; a token not in flight is dropped.
- A server->client request goes to the one call its rule names, or to nobody (refused); never to a guess.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from bastion.errors import BastionError, UpstreamTimeout, UpstreamUnavailable
from bastion.types import JsonDict, RequestId
from bastion.upstream.association import RULES, Call, Kind, Scope, audience

FAILURE_CODES: Final = frozenset({UpstreamUnavailable.jsonrpc_code, UpstreamTimeout.jsonrpc_code})
"""Codes of the errors a transport makes up for a request whose exchange failed (HTTP down, 5xx, timeout)."""


class Owner(Protocol):
    """The downstream side an upstream request belongs to (a client session)."""

    session_id: str

    @property
    def principal_name(self) -> str:
        """The principal the session belongs to (association rules)."""
        ...

    async def relay_request(
        self, message: JsonDict, related: RequestId | None, *, server: str = ""
    ) -> JsonDict:
        """Forward a server->client request from upstream `server` to the client; returns the client's response."""
        ...

    async def relay_notification(self, message: JsonDict, related: RequestId | None) -> None:
        """Forward a notification to the client, on the stream of `related` when given."""
        ...


@dataclass(slots=True)
class Pending:
    """An upstream request in flight."""

    future: asyncio.Future[JsonDict]
    owner: Owner | None
    downstream_id: RequestId | None
    progress_token: Any = None
    started: float = field(default_factory=time.monotonic)
    sender: asyncio.Task[Any] | None = None
    """The caller's task while it is still sending the request (the timer interrupts a send that blocks)."""
    send_expired: bool = False


def expire(pending: Pending, server: str, method: str, timeout: float) -> None:
    if not pending.future.done():
        pending.future.set_exception(
            UpstreamTimeout(
                f"server {server} did not answer {method} in {timeout:g}s", data={"server": server}
            )
        )
    if pending.sender is not None:
        pending.send_expired = True
        pending.sender.cancel()


def transport_failure(reply: JsonDict, server: str) -> bool:
    """True for the error a transport made up because the exchange itself failed (not the server's own error)."""
    error = reply.get("error")
    if not isinstance(error, dict) or error.get("code") not in FAILURE_CODES:
        return False
    data = error.get("data")
    return isinstance(data, dict) and data.get("server") == server


ProgressRoute = tuple[Owner, Any, RequestId | None]
"""Where a rewritten progress token leads: (the caller, its own token, its request id)."""


class Correlation:
    """The requests in flight on one upstream connection and what upstream messages relate to."""

    def __init__(self, *, scope: Scope, transport: str, scope_owner: Owner | None = None) -> None:
        self.scope = scope
        self.transport = transport
        self.scope_owner = scope_owner
        self._ids = itertools.count(1)
        self._pending: dict[RequestId, Pending] = {}
        self._progress: dict[Any, ProgressRoute] = {}

    def open(self, pending: Pending, params: JsonDict) -> tuple[int, JsonDict]:
        """Register a request: its upstream id, and its params with the progress token rewritten."""
        upstream_id = next(self._ids)
        self._pending[upstream_id] = pending
        meta = params.get("_meta")
        if isinstance(meta, dict) and "progressToken" in meta and pending.owner is not None:
            token = f"p{next(self._ids)}"
            self._progress[token] = (pending.owner, meta["progressToken"], pending.downstream_id)
            pending.progress_token = token
            params = {**params, "_meta": {**meta, "progressToken": token}}
        return upstream_id, params

    def close(self, upstream_id: RequestId) -> Pending | None:
        """Forget a request (answered, failed or abandoned) and its progress token."""
        pending = self._pending.pop(upstream_id, None)
        if pending is not None and pending.progress_token is not None:
            self._progress.pop(pending.progress_token, None)
        return pending

    def resolve(self, response: JsonDict) -> bool:
        """Settle the request a response answers; False when its id is not in flight (the response is dropped)."""
        upstream_id = response.get("id")
        if not isinstance(upstream_id, (str, int)) or isinstance(upstream_id, bool):
            return False
        pending = self._pending.get(upstream_id)
        if pending is None:
            return False
        if not pending.future.done():
            pending.future.set_result(response)
        return True

    def fail_all(self, exc: BastionError) -> None:
        """The connection ended: every request in flight fails with `exc`."""
        pending, self._pending = self._pending, {}
        self._progress.clear()
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(exc)

    def progress_route(self, token: object) -> ProgressRoute | None:
        """Where a progress notification with this (rewritten) token goes."""
        try:
            return self._progress.get(token)
        except TypeError:  # an unhashable token from the upstream names no call
            return None

    def calls(self) -> list[Call]:
        """The client calls in flight, as association data."""
        return [c for p in self._pending.values() if (c := _call_of(p)) is not None]

    def owners(self) -> dict[str, Owner]:
        """The sessions with calls in flight (and a `session` scope's own session), by session id."""
        owners = {p.owner.session_id: p.owner for p in self._pending.values() if p.owner is not None}
        if self.scope_owner is not None:
            owners[self.scope_owner.session_id] = self.scope_owner
        return owners

    def call_for(self, related: RequestId | None) -> Call | None:
        """The client call an upstream message relates to (the transport's `related`), if it is one."""
        pending = self._pending.get(related) if related is not None else None
        return _call_of(pending) if pending is not None else None

    def owner_of_request(self, related: RequestId | None) -> tuple[Owner | None, RequestId | None]:
        """The one session (and its request id) a server->client request goes to; (None, None): refuse it."""
        owners = self.owners()
        rule = RULES[(self.transport, self.scope.isolation, Kind.REQUEST)]
        targets = audience(rule, scope=self.scope, related=self.call_for(related), in_flight=self.calls())
        if len(targets) != 1 or (owner := owners.get(targets[0].session)) is None:
            return None, None
        return owner, targets[0].related

    def client_calls_in_flight(self) -> int:
        """Requests in flight on behalf of clients (Bastion's own probes and handshakes not counted)."""
        return sum(1 for p in self._pending.values() if p.owner is not None)


def _call_of(pending: Pending) -> Call | None:
    owner = pending.owner
    if owner is None or pending.downstream_id is None:
        return None
    return Call(session=owner.session_id, principal=owner.principal_name, request_id=pending.downstream_id)
