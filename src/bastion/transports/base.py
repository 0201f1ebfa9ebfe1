"""The transport seams: how Bastion talks to an upstream (client side) and to a client (server side).

Transports move JSON-RPC messages and know nothing of policy, routing or MCP semantics beyond what their wire
needs (HTTP headers derived from the message, SSE framing, session ids of their own hop).

Client side (`ClientTransport`): Bastion is the MCP client of an upstream. One instance is one logical
connection: `send()` a message, iterate `receive()` for everything the upstream sends back. On HTTP, a message that
arrived on the SSE stream of a POST carries `related` = the id of that POST's request, so server->client requests
can be routed to the client session whose call caused them.

Server side (`Outbound`): Bastion is the MCP server of a client. A session hands every outgoing message to its
`Outbound` with `related` = the client request it belongs to (its response, its progress, a server->client request
made while serving it), or None for session-level traffic (list_changed, unrelated requests). Each transport maps
that onto its wire: stdio writes a line; Streamable HTTP picks the POST's SSE stream or the GET stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from bastion.errors import UpstreamUnavailable

# Re-exported for modules that still import them from here; new code imports `bastion.types`.
from bastion.types import JsonDict as JsonDict
from bastion.types import RequestId as RequestId


@dataclass(frozen=True, slots=True)
class Incoming:
    """A message received from an upstream."""

    message: JsonDict
    """The parsed JSON-RPC message."""
    related: RequestId | None = None
    """Id of our request whose response stream carried this message (HTTP), or None when unknown (stdio)."""


class TransportClosed(UpstreamUnavailable):
    """The connection to the upstream is gone (process exited, stream closed, HTTP session ended)."""


class ClientTransport(Protocol):
    """A connection from Bastion to one upstream MCP server."""

    async def start(self) -> None:
        """Open the connection (spawn the process, check the URL). Raises `UpstreamUnavailable` on failure."""
        ...

    async def send(self, message: JsonDict) -> None:
        """Send one message. Raises `TransportClosed` when the connection is gone.

        For HTTP transports a request's response is delivered through `receive()`, never returned here; when the
        HTTP exchange itself fails, the transport delivers a JSON-RPC error response for that request id instead.
        """
        ...

    def receive(self) -> AsyncIterator[Incoming]:
        """Everything the upstream sends, in order of arrival. Ends when the connection closes."""
        ...

    def set_protocol_version(self, version: str) -> None:
        """Tell the transport the negotiated version (HTTP sends it as `MCP-Protocol-Version`)."""
        ...

    async def aclose(self) -> None:
        """Close the connection and release every resource (terminate a child process, DELETE an HTTP session)."""
        ...


class Outbound(Protocol):
    """Where a client session's outgoing messages go; implemented by each server-side transport."""

    async def send(self, message: JsonDict, related: RequestId | None) -> None:
        """Deliver one message to the client.

        Args:
            message: A JSON-RPC response, notification or server->client request.
            related: The client request this message belongs to, or None for session-level traffic.
        """
        ...
