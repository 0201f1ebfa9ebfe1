"""OAuth 2.1 resource-server pieces: the RFC 9728 metadata document, its URL, and the 401 challenge."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bastion.auth.config import AuthConfig

WELL_KNOWN = "/.well-known/oauth-protected-resource"
"""RFC 9728 well-known path; the resource's own path is appended to it (path-inserted form)."""


def resource_metadata(config: AuthConfig) -> dict[str, Any]:
    """The protected resource metadata document (RFC 9728 section 2)."""
    document: dict[str, Any] = {
        "resource": config.resource_url or "",
        "authorization_servers": list(config.authorization_servers),
        "bearer_methods_supported": ["header"],
    }
    if config.scopes_supported:
        document["scopes_supported"] = list(config.scopes_supported)
    if config.jwt is not None:
        document["resource_signing_alg_values_supported"] = list(config.jwt.algorithms)
    return document


def resource_metadata_url(resource_url: str) -> str:
    """Where clients find the metadata of `resource_url`: the path-inserted well-known URL (RFC 9728 3.1).

    `https://gw.example.com/mcp` -> `https://gw.example.com/.well-known/oauth-protected-resource/mcp`.
    """
    parts = urlsplit(resource_url)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, "", ""))


def metadata_paths(resource_url: str | None) -> frozenset[str]:
    """The HTTP paths that serve the metadata: the root well-known path and the path-inserted one."""
    paths = {WELL_KNOWN}
    if resource_url:
        path = urlsplit(resource_url).path.rstrip("/")
        if path:
            paths.add(WELL_KNOWN + path)
    return frozenset(paths)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(*, metadata_url: str | None, error: str | None = None, scope: str | None = None) -> str:
    """The `WWW-Authenticate` value of a 401 (or 403 with `error="insufficient_scope"`).

    Per RFC 6750 a request without credentials gets no `error`; an invalid token gets `invalid_token`.
    """
    params: list[str] = []
    if error:
        params.append(f"error={_quoted(error)}")
    if scope:
        params.append(f"scope={_quoted(scope)}")
    if metadata_url:
        params.append(f"resource_metadata={_quoted(metadata_url)}")
    return "Bearer " + ", ".join(params) if params else "Bearer"
