"""Opening a session with an upstream in either era: the `server/discover` probe (2026-07-28), the `initialize`
handshake (2024-11-05 .. 2025-11-25), and the long-lived `subscriptions/listen` of a 2026-07-28 connection.

Each function fills in what the connection learned (version, capabilities, server info, instructions) and tells
the transport the negotiated version; the connection decides which to try and in what order.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Final

from bastion import __version__
from bastion.errors import BastionError, UpstreamTimeout, UpstreamUnavailable
from bastion.protocol import jsonrpc, versions
from bastion.transports.base import JsonDict

if TYPE_CHECKING:
    from bastion.upstream.connection import UpstreamConnection

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


async def probe_modern(conn: UpstreamConnection, timeout: float, *, patient: bool = False) -> bool:
    """Ask for `server/discover`; True (and the connection set up) when the server speaks 2026-07-28."""
    params = conn._envelope({}, None)
    try:
        reply = await conn._call(
            "server/discover",
            params,
            timeout if patient else min(timeout, PROBE_TIMEOUT_SECONDS),
            None,
            None,
        )
    except (UpstreamTimeout, UpstreamUnavailable) as exc:
        if isinstance(exc, UpstreamUnavailable) and conn._reader is not None and conn._reader.done():
            raise
        return False
    result = reply.get("result")
    if not isinstance(result, dict):
        return False
    supported = [v for v in result.get("supportedVersions", []) if versions.is_modern(v)]
    if not supported:
        return False
    conn.protocol_version = supported[0]
    conn.capabilities = result.get("capabilities") or {}
    meta = result.get("_meta") or {}
    conn.server_info = meta.get(versions.META_SERVER_INFO) or result.get("serverInfo") or {}
    conn.instructions = result.get("instructions")
    assert conn._transport is not None
    conn._transport.set_protocol_version(conn.protocol_version)
    return True


async def listen(conn: UpstreamConnection) -> None:
    """2026-07-28: list_changed only arrives on a `subscriptions/listen` stream, so keep one open."""
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
        return
    with contextlib.suppress(BastionError):
        await conn._call(
            "subscriptions/listen",
            conn._envelope({"notifications": wanted}, None),
            LISTEN_TIMEOUT_SECONDS,
            None,
            None,
        )


async def handshake(conn: UpstreamConnection, timeout: float) -> None:
    """The handshake era's `initialize` + `notifications/initialized`; raises `UpstreamUnavailable` on refusal."""
    params = {
        "protocolVersion": versions.LATEST_HANDSHAKE,
        "capabilities": UPSTREAM_CAPABILITIES,
        "clientInfo": CLIENT_INFO,
    }
    reply = await conn._call("initialize", params, timeout, None, None)
    result = reply.get("result")
    if not isinstance(result, dict):
        error = reply.get("error") or {}
        raise UpstreamUnavailable(f"server {conn.name} refused initialize (code {error.get('code')})")
    version = result.get("protocolVersion")
    if version not in versions.HANDSHAKE_VERSIONS:
        raise UpstreamUnavailable(f"server {conn.name} answered with unsupported version {version!r}")
    conn.protocol_version = str(version)
    conn.capabilities = result.get("capabilities") or {}
    conn.server_info = result.get("serverInfo") or {}
    conn.instructions = result.get("instructions")
    assert conn._transport is not None
    conn._transport.set_protocol_version(conn.protocol_version)
    await conn._transport.send(jsonrpc.notification("notifications/initialized"))
