"""`notifications/cancelled` that arrives outside any session over HTTP, routed to the one call it names.

Why: a 2026-07-28 HTTP client has no session, and a bridge such as mcp-remote may forward a cancel without the
`Mcp-Session-Id` of the call. Either way the call must stop and the upstream must hear the cancel, or it keeps
working for nobody.

Rules:
- Only the caller's own calls can be cancelled: the search is limited to requests of the same principal.
- The request id must name exactly one call in flight (a 2026-07-28 request, or a request of one of that
  principal's sessions); an ambiguous or unknown id is ignored, as the spec asks of invalid cancels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.protocol import jsonrpc
from bastion.types import JsonDict, RequestId

if TYPE_CHECKING:
    from bastion.core.gateway import Gateway
    from bastion.core.session import DownstreamSession


class InFlight:
    """The 2026-07-28 requests being served now, by (principal, request id)."""

    def __init__(self) -> None:
        self._calls: dict[tuple[str, RequestId], list[DownstreamSession]] = {}

    def add(self, principal: str, request_id: RequestId, session: DownstreamSession) -> None:
        self._calls.setdefault((principal, request_id), []).append(session)

    def discard(self, principal: str, request_id: RequestId, session: DownstreamSession) -> None:
        sessions = self._calls.get((principal, request_id), [])
        if session in sessions:
            sessions.remove(session)
        if not sessions:
            self._calls.pop((principal, request_id), None)

    def of(self, principal: str, request_id: RequestId) -> list[DownstreamSession]:
        return list(self._calls.get((principal, request_id), []))


async def cancel_sessionless(
    gateway: Gateway, in_flight: InFlight, principal: str, message: JsonDict
) -> bool:
    """Cancel the one call of `principal` that a sessionless `notifications/cancelled` names; True if one was."""
    request_id = jsonrpc.as_dict(message.get("params")).get("requestId")
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        return False
    candidates = in_flight.of(principal, request_id) + [
        s for s in gateway.sessions.values() if s.info.principal.name == principal and s.in_flight(request_id)
    ]
    if len(candidates) != 1:
        return False
    await candidates[0].cancel(request_id)
    return True
