"""`UIConfig`: the `ui:` section (the operator dashboard under `/ui` and its admin API under `/api`).

Example:
    ui:
      enabled: true
      admin_role: admin          # API keys or tokens with this role may use the dashboard and the admin API
      session_seconds: 28800     # a dashboard login lasts 8 hours (idle or not)
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class UIConfig(BaseModel):
    """The `ui:` section. Everything has a default: no section means the dashboard is served, admins only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    """Serve `/ui` and `/api`. Off, both paths stay protected by the bearer middleware and answer 404."""
    admin_role: str = Field(default="admin", min_length=1)
    """The role a principal needs (from its API key, its token's roles claim, or `policy.principals`)."""
    session_seconds: float = Field(default=8 * 3600.0, gt=0, le=7 * 86400.0)
    """Lifetime of a dashboard login; the cookie and its server-side record expire together."""
    cookie_secure: bool | None = None
    """Mark the session cookie `Secure`. None: only when the request came over https (set true behind a
    TLS-terminating proxy that talks plain HTTP to Bastion)."""
    feed_size: int = Field(default=1000, ge=10, le=100_000)
    """Recent calls and notices kept in memory for the live feed and the overview."""
    subscriber_queue: int = Field(default=256, ge=8, le=10_000)
    """Events a live-feed subscriber may fall behind before it is dropped (it reconnects and resyncs)."""
    export_limit: int = Field(default=10_000, ge=1, le=1_000_000)
    """Most audit events one export returns."""
    allowed_origins: list[str] = Field(default_factory=list)
    """Browser origins (`https://ops.example.com`) that may call `/ui` and `/api` cross-origin, with the
    dashboard's cookie (credentialed CORS). None by default: every other origin, loopback ones included, is
    refused there (403), so a page on another local port cannot read keys, audit or the CSRF token."""
