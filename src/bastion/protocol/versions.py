"""MCP protocol revisions Bastion speaks, newest first, and version negotiation (pure)."""

from __future__ import annotations

from typing import Final

MODERN_VERSIONS: Final = ("2026-07-28",)
"""Stateless revisions: every request carries the `_meta` envelope; no initialize, no sessions."""
HANDSHAKE_VERSIONS: Final = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
"""Initialize-handshake revisions, newest first."""
ALL_VERSIONS: Final = MODERN_VERSIONS + HANDSHAKE_VERSIONS
LATEST_HANDSHAKE: Final = HANDSHAKE_VERSIONS[0]
DEFAULT_HTTP_VERSION: Final = "2025-03-26"
"""What a Streamable HTTP request without `MCP-Protocol-Version` is assumed to speak (spec, 2025-06-18+)."""

REMOVED_IN_MODERN: Final = frozenset(
    {"initialize", "ping", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"}
)
"""Handshake-era methods the 2026-07-28 revision removed: a request carrying the modern envelope gets -32601."""

META_PROTOCOL_VERSION: Final = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_CAPABILITIES: Final = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT_INFO: Final = "io.modelcontextprotocol/clientInfo"
META_SERVER_INFO: Final = "io.modelcontextprotocol/serverInfo"
META_LOG_LEVEL: Final = "io.modelcontextprotocol/logLevel"


def negotiate(requested: object) -> str:
    """Answer an `initialize`: the requested handshake version if we speak it, else our newest handshake one."""
    if isinstance(requested, str) and requested in HANDSHAKE_VERSIONS:
        return requested
    return LATEST_HANDSHAKE


def is_modern(version: object) -> bool:
    """True for a stateless (2026-07-28+) revision."""
    return isinstance(version, str) and version in MODERN_VERSIONS


def supports_batching(version: str) -> bool:
    """JSON-RPC batches exist only in 2025-03-26 (added then, removed in 2025-06-18)."""
    return version == "2025-03-26"


def envelope_version(params: object) -> str | None:
    """The protocol version in a 2026-07-28 request's `_meta` envelope, or None for a handshake-era request."""
    if not isinstance(params, dict):
        return None
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return None
    version = meta.get(META_PROTOCOL_VERSION)
    return version if isinstance(version, str) else None
