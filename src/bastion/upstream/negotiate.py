"""Opening a session with an upstream in either era: the `server/discover` probe (2026-07-28), the `initialize`
handshake (2024-11-05 .. 2025-11-25), and the long-lived `subscriptions/listen` of a 2026-07-28 connection.

Each function returns what it learned (`Negotiated`: version, capabilities, server info, instructions); the
connection adopts it, tells its transport, and decides which to try and in what order. This module knows the
connection only through `Channel`, its small public surface.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Final, Protocol

from bastion import __version__
from bastion.errors import BastionError, UpstreamTimeout, UpstreamUnavailable
from bastion.protocol import versions
from bastion.transports.base import JsonDict

CLIENT_INFO: Final = {"name": "bastion", "version": __version__}
UPSTREAM_CAPABILITIES: Final[JsonDict] = {
    "sampling": {},
    "elicitation": {"form": {}, "url": {}},
    "roots": {"listChanged": True},
}
"""What Bastion declares to upstreams: everything it can relay. A client without the capability gets the
upstream's request refused on its behalf."""
PROBE_TIMEOUT_SECONDS: Final = 10.0
"""How long the `server/discover` era probe may take before we fall back to the initialize handshake."""
LISTEN_TIMEOUT_SECONDS: Final = 10 * 365 * 86400.0
"""A `subscriptions/listen` request is meant to stay open for the life of the connection."""


class Channel(Protocol):
    """What negotiation needs of an upstream connection."""

    name: str
    capabilities: JsonDict

    @property
    def reading(self) -> bool:
        """Whether the connection still receives from its transport."""
        ...

    def envelope(self, params: JsonDict, client_capabilities: JsonDict | None = None) -> JsonDict:
        """`params` with this hop's 2026-07-28 `_meta` envelope."""
        ...

    async def raw_request(
        self, method: str, params: JsonDict, timeout: float, sent: asyncio.Event | None = None
    ) -> JsonDict:
        """A request of Bastion's own; returns the response message."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Negotiated:
    """What an upstream told us about itself when the session with it opened."""

    modern: bool
    """It speaks a 2026-07-28 revision (no handshake, an envelope on every request)."""
    protocol_version: str
    capabilities: JsonDict
    server_info: JsonDict
    instructions: Any = None


async def probe_modern(conn: Channel, timeout: float, *, patient: bool = False) -> Negotiated | None:
    """Ask for `server/discover`; what the server said when it speaks 2026-07-28, else None.

    Raises:
        UpstreamUnavailable: the upstream went away while we asked.
    """
    try:
        reply = await conn.raw_request(
            "server/discover", conn.envelope({}), timeout if patient else min(timeout, PROBE_TIMEOUT_SECONDS)
        )
    except (UpstreamTimeout, UpstreamUnavailable) as exc:
        if isinstance(exc, UpstreamUnavailable) and not conn.reading:
            raise
        return None
    result = reply.get("result")
    if not isinstance(result, dict):
        return None
    supported = [v for v in result.get("supportedVersions", []) if versions.is_modern(v)]
    if not supported:
        return None
    meta = result.get("_meta") or {}
    return Negotiated(
        modern=True,
        protocol_version=supported[0],
        capabilities=result.get("capabilities") or {},
        server_info=meta.get(versions.META_SERVER_INFO) or result.get("serverInfo") or {},
        instructions=result.get("instructions"),
    )


async def listen(conn: Channel, opened: asyncio.Event) -> None:
    """2026-07-28: list_changed only arrives on a `subscriptions/listen` stream, so keep one open.

    `opened` is set once the listen request is on its way (or none is needed)."""
    wanted = {
        key: True
        for key, cap in (
            ("toolsListChanged", "tools"),
            ("promptsListChanged", "prompts"),
            ("resourcesListChanged", "resources"),
        )
        if isinstance(conn.capabilities.get(cap), dict) and conn.capabilities[cap].get("listChanged")
    }
    if not wanted:
        opened.set()
        return
    try:
        with contextlib.suppress(BastionError):
            await conn.raw_request(
                "subscriptions/listen",
                conn.envelope({"notifications": wanted}),
                LISTEN_TIMEOUT_SECONDS,
                opened,
            )
    finally:
        opened.set()


async def handshake(conn: Channel, timeout: float) -> Negotiated:
    """The handshake era's `initialize` (the connection then sends `notifications/initialized`).

    Raises:
        UpstreamUnavailable: the server refused initialize or answered with a version we do not speak.
    """
    params = {
        "protocolVersion": versions.LATEST_HANDSHAKE,
        "capabilities": UPSTREAM_CAPABILITIES,
        "clientInfo": CLIENT_INFO,
    }
    reply = await conn.raw_request("initialize", params, timeout)
    result = reply.get("result")
    if not isinstance(result, dict):
        error = reply.get("error") or {}
        raise UpstreamUnavailable(f"server {conn.name} refused initialize (code {error.get('code')})")
    version = result.get("protocolVersion")
    if version not in versions.HANDSHAKE_VERSIONS:
        raise UpstreamUnavailable(f"server {conn.name} answered with unsupported version {version!r}")
    return Negotiated(
        modern=False,
        protocol_version=str(version),
        capabilities=result.get("capabilities") or {},
        server_info=result.get("serverInfo") or {},
        instructions=result.get("instructions"),
    )
