"""`AuthConfig`: how callers prove who they are (API keys, JWT/OIDC bearer tokens, the stdio local user)."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ASYMMETRIC_ALGORITHMS: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""The only JWT algorithms accepted: public-key ones. `none` and HMAC are refused, which rules out the classic
HS256-signed-with-the-RSA-public-key confusion at config time."""

MAX_LEEWAY_SECONDS: Final = 300
"""Upper bound of the clock-skew allowance, in seconds; more would keep expired tokens alive."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ApiKeysConfig(_Model):
    enabled: bool = True
    """Accept `bst_...` keys in `Authorization: Bearer` or `X-API-Key`."""


class JwtConfig(_Model):
    """A JWT/OIDC issuer whose bearer tokens Bastion accepts."""

    jwks_url: str | None = None
    """The issuer's JWKS document (fetched, cached, refreshed on an unknown `kid`)."""
    public_key_file: str | None = None
    """A PEM public key instead of a JWKS URL."""
    issuer: str
    """Expected `iss`, compared exactly."""
    audience: str | None = None
    """Expected `aud`; defaults to `auth.resource_url` (RFC 8707: tokens must be minted for this gateway)."""
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    """Allowed `alg` values (public-key algorithms only)."""
    leeway_seconds: float = Field(default=30.0, ge=0, le=MAX_LEEWAY_SECONDS)
    """Clock skew allowed on `exp`, `nbf` and `iat`."""
    principal_claim: str = "sub"
    """Claim that names the principal."""
    roles_claim: str = "groups"
    """Claim holding roles: a list of strings, or one space-separated string (like `scope`)."""
    jwks_cache_seconds: float = Field(default=300.0, gt=0)
    """How long a fetched JWKS is trusted before it is fetched again."""
    jwks_min_refresh_seconds: float = Field(default=30.0, ge=0)
    """Minimum time between two refreshes caused by unknown `kid`s (stops a flood of made-up kids)."""
    jwks_timeout_seconds: float = Field(default=5.0, gt=0)
    """Timeout of one JWKS fetch."""

    @field_validator("algorithms")
    @classmethod
    def _check_algorithms(cls, algorithms: list[str]) -> list[str]:
        if not algorithms:
            raise ValueError("at least one algorithm is needed")
        bad = [a for a in algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            raise ValueError(f"algorithms {bad} are not allowed; use {sorted(ASYMMETRIC_ALGORITHMS)}")
        return algorithms

    @field_validator("jwks_url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError("`jwks_url` must be an http(s) URL")
        return url

    @model_validator(mode="after")
    def _check_key_source(self) -> JwtConfig:
        if (self.jwks_url is None) == (self.public_key_file is None):
            raise ValueError("set exactly one of `jwks_url` and `public_key_file`")
        return self


class LocalPrincipalConfig(_Model):
    """Who the single local user of a stdio gateway is."""

    name: str = "local"
    roles: list[str] = Field(default_factory=list)


class AuthConfig(_Model):
    """The `auth:` section."""

    enabled: bool = False
    """Require authentication on the HTTP endpoints. Off is only allowed on a loopback listen address."""
    api_keys: ApiKeysConfig = Field(default_factory=ApiKeysConfig)
    jwt: JwtConfig | None = None
    resource_url: str | None = None
    """This gateway's canonical resource URL (e.g. `https://mcp.example.com/mcp`): the token audience and the
    `resource` of the protected resource metadata."""
    authorization_servers: list[str] = Field(default_factory=list)
    """Issuer URLs clients should get tokens from (RFC 9728 `authorization_servers`)."""
    scopes_supported: list[str] = Field(default_factory=list)
    """Advertised in the protected resource metadata."""
    protected_paths: list[str] = Field(default_factory=lambda: ["/mcp", "/sse", "/messages", "/api"])
    """HTTP path prefixes that need a credential."""
    stdio_principal: LocalPrincipalConfig = Field(default_factory=LocalPrincipalConfig)
    """The principal of the stdio transport, so policy applies there too."""

    @model_validator(mode="after")
    def _check_jwt(self) -> AuthConfig:
        if self.jwt is not None and self.jwt.audience is None and self.resource_url is None:
            raise ValueError("jwt needs `audience` or `auth.resource_url` (the token audience)")
        if self.jwt is not None and not self.authorization_servers:
            raise ValueError("jwt needs `authorization_servers` (RFC 9728 requires at least one)")
        if self.enabled and not self.api_keys.enabled and self.jwt is None:
            raise ValueError("auth is enabled but neither api_keys nor jwt is")
        return self
