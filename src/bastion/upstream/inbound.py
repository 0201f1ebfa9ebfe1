"""What one upstream connection receives: answers to its requests, requests to clients, notifications.

Kept apart from `connection.py` (which sends, supervises and reconnects) because the rules for server->client
traffic are their own: every message is tied to its owner by `pending.Correlation` or refused, never guessed.

Rules:
- An answer resolves the request it names; an answer to an unknown id is logged and dropped.
- A request to clients (sampling, elicitation, roots) is relayed to the one session whose call it relates to and
  answered on the transport it came from; with no such session it is refused (`MethodNotFound`), and past
  `MAX_SERVER_REQUESTS` at once it is refused as well (a flooding server stays bounded). `ping` is answered here.
- Progress is mapped back to the owner's token; every other notification goes to the connection's listener.
- One bad message (a relay or a listener that fails on it) is logged and dropped: the reader keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

from bastion.errors import BastionError, InternalError, MethodNotFound, error_response
from bastion.protocol import jsonrpc
from bastion.transports.base import ClientTransport, Incoming, JsonDict
from bastion.upstream.association import Call

if TYPE_CHECKING:
    from bastion.upstream.connection import UpstreamConnection

ConnectionListener = Callable[["UpstreamConnection", JsonDict, "Call | None"], Awaitable[None]]
"""Told of a notification for sessions: (connection, message, the call it relates to when the transport says)."""

MAX_SERVER_REQUESTS: Final = 64
"""Server->client requests from one upstream served at once; more are refused."""

logger = logging.getLogger("bastion.upstream")


class Inbound:
    """The reader side of one `UpstreamConnection`."""

    def __init__(self, connection: UpstreamConnection, on_notification: ConnectionListener | None) -> None:
        self._connection = connection
        self._on_notification = on_notification
        self._serving = 0

    async def read(self, transport: ClientTransport) -> None:
        """Serve every message `transport` delivers until it ends."""
        name, correlation = self._connection.name, self._connection.correlation
        async for incoming in transport.receive():
            message = incoming.message
            if "method" not in message:
                if not correlation.resolve(message):
                    logger.debug("upstream %s answered an unknown request id", name)
            elif "id" in message:
                if self._serving >= MAX_SERVER_REQUESTS:
                    logger.warning("upstream %s: too many requests to clients at once; refused one", name)
                    refusal = InternalError("too many requests in flight")
                    with contextlib.suppress(BastionError):
                        await transport.send(error_response(message["id"], refusal))
                    continue
                self._serving += 1
                asyncio.create_task(self._serve(incoming, transport))  # noqa: RUF006 - tracked by its reply
            else:
                try:
                    await self._notification(incoming)
                except Exception:  # the reader's boundary: one bad message must not end the connection
                    logger.exception("upstream %s: relaying %s failed; dropped", name, message.get("method"))

    async def _serve(self, incoming: Incoming, transport: ClientTransport) -> None:
        try:
            reply = await self._answer(incoming)
            with contextlib.suppress(BastionError):
                await transport.send(reply)
        finally:
            self._serving -= 1

    async def _answer(self, incoming: Incoming) -> JsonDict:
        message = incoming.message
        request_id = message["id"]
        if message.get("method") == "ping":
            return jsonrpc.result(request_id, {})
        connection = self._connection
        owner, downstream_id = connection.correlation.owner_of_request(incoming.related)
        if owner is None:
            logger.warning(
                "upstream %s sent %s that no single client call can be tied to; refused",
                connection.name,
                message.get("method"),
            )
            unknown = MethodNotFound("no client session to relay this request to (association unknown)")
            return error_response(request_id, unknown)
        try:
            answer = await owner.relay_request(message, downstream_id, server=connection.name)
        except BastionError as exc:
            answer = error_response(request_id, exc)
        reply: JsonDict = {"jsonrpc": "2.0", "id": request_id}
        if "error" in answer:
            reply["error"] = answer["error"]
        else:
            reply["result"] = answer.get("result", {})
        return reply

    async def _notification(self, incoming: Incoming) -> None:
        message = incoming.message
        method = message["method"]
        params = message.get("params") or {}
        connection = self._connection
        if method == "notifications/progress":
            route = connection.correlation.progress_route(params.get("progressToken"))
            if route is not None:
                owner, token, downstream_id = route
                await owner.relay_notification(
                    {**message, "params": {**params, "progressToken": token}}, downstream_id
                )
            return
        if method == "notifications/cancelled":
            return  # a server cancelling its own request to us: our relay simply finishes unanswered
        if self._on_notification is not None:
            await self._on_notification(connection, message, connection.call_for(incoming.related))
