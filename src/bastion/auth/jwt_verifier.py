"""JWT/OIDC bearer tokens: signature against a JWKS (or a static key), then `iss`, `aud`, `exp`, `nbf`.

Rules:
- The `alg` in the token header must be in the configured allow-list (public-key algorithms only) *and* match
  the family of the key it names (RS/PS -> RSA, ES -> EC, EdDSA -> OKP). PyJWT is then told that one algorithm,
  so `none` and HS256-signed-with-the-public-key can never verify.
- `exp`, `iss` and `aud` are required; the audience is this gateway's resource URL unless configured (RFC 8707).
- A JWKS is cached for `jwks_cache_seconds`; an unknown `kid` triggers at most one refresh per
  `jwks_min_refresh_seconds`, so made-up kids cannot make Bastion hammer the issuer.
- Failures map to a stable `AuthFailure`; no message or log line contains the token.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol

import anyio
import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from bastion.auth.config import JwtConfig
from bastion.auth.failures import AuthFailure, auth_error
from bastion.auth.principal import token_digest
from bastion.errors import ConfigError
from bastion.types import Principal

logger = logging.getLogger("bastion.auth")

MAX_TOKEN_CHARS: Final = 16_384
"""Longer bearer tokens are refused before any parsing."""

_KEY_TYPES: Final = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
"""Algorithm prefix -> JWK `kty` it needs."""

_KEPT_CLAIMS: Final = ("iss", "aud", "sub", "azp", "client_id", "scope", "email")
"""Non-secret claims copied onto the principal for policy conditions and audit."""

_ERRORS: Final[list[tuple[type[Exception], AuthFailure]]] = [
    (jwt.ExpiredSignatureError, AuthFailure.EXPIRED),
    (jwt.ImmatureSignatureError, AuthFailure.NOT_YET_VALID),
    (jwt.InvalidIssuedAtError, AuthFailure.NOT_YET_VALID),
    (jwt.InvalidAudienceError, AuthFailure.WRONG_AUDIENCE),
    (jwt.InvalidIssuerError, AuthFailure.WRONG_ISSUER),
    (jwt.InvalidSignatureError, AuthFailure.BAD_SIGNATURE),
    (jwt.MissingRequiredClaimError, AuthFailure.MISSING_CLAIM),
    (jwt.InvalidAlgorithmError, AuthFailure.UNSUPPORTED_ALGORITHM),
    (jwt.InvalidKeyError, AuthFailure.BAD_SIGNATURE),
]
"""PyJWT exceptions -> failure reasons; anything else PyJWT raises is `malformed`."""


def _kty_of_key(key: Any) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC"
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "OKP"
    return "unknown"


class KeySource(Protocol):
    """Where verification keys come from: a JWKS URL or one static key."""

    async def key_for(self, kid: str | None) -> tuple[Any, str]:
        """The key object for `kid` and its JWK `kty`; raises `AuthError(unknown_key)` when there is none."""
        ...


class StaticKey:
    """One PEM public key from a file (no `kid` needed)."""

    def __init__(self, pem: bytes) -> None:
        try:
            self._key = load_pem_public_key(pem)
        except ValueError as exc:
            raise ConfigError("not a PEM public key", path="auth.jwt.public_key_file") from exc
        self._kty = _kty_of_key(self._key)

    @classmethod
    def from_file(cls, path: str | Path) -> StaticKey:
        try:
            return cls(Path(path).read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read {path}", path="auth.jwt.public_key_file") from exc

    async def key_for(self, kid: str | None) -> tuple[Any, str]:
        return self._key, self._kty


class JwksKeys:
    """A JWKS URL, fetched lazily, cached, and refreshed (rate-limited) on an unknown `kid`."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient | None = None,
        cache_seconds: float = 300.0,
        min_refresh_seconds: float = 30.0,
        timeout_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._client = client
        self._own_client = client is None
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._timeout = timeout_seconds
        self._clock = clock
        self._keys: dict[str, tuple[Any, str]] = {}
        self._fetched_at: float | None = None
        """When the keys in hand were fetched (None: never successfully)."""
        self._attempted_at: float | None = None
        """When the last fetch was tried, successful or not."""
        self._lock = anyio.Lock()
        self.fetches = 0
        """How many times the JWKS was fetched (for tests and metrics)."""

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def key_for(self, kid: str | None) -> tuple[Any, str]:
        if self._fetched_at is None or self._clock() - self._fetched_at >= self._cache_seconds:
            await self._refresh()
        found = self._lookup(kid)
        if found is None and self._may_refresh():
            await self._refresh()
            found = self._lookup(kid)
        if found is None:
            raise auth_error(AuthFailure.UNKNOWN_KEY if self._keys else AuthFailure.KEYS_UNAVAILABLE)
        return found

    def _may_refresh(self) -> bool:
        return self._attempted_at is None or self._clock() - self._attempted_at >= self._min_refresh

    def _lookup(self, kid: str | None) -> tuple[Any, str] | None:
        if kid is None:
            # Without a kid only an unambiguous single-key set can be used.
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    async def _refresh(self) -> None:
        requested = self._clock()
        async with self._lock:
            if self._attempted_at is not None and self._attempted_at >= requested:
                return  # another task refreshed while this one waited for the lock
            if self._attempted_at is not None and self._fetched_at is None and not self._may_refresh():
                return  # the issuer was down moments ago: do not hammer it
            self._attempted_at = self._clock()
            try:
                keys = await self._fetch()
            except (httpx.HTTPError, ValueError) as exc:
                logger.warning("JWKS fetch from %s failed: %s", self._url, type(exc).__name__)
                if self._keys:
                    self._fetched_at = self._attempted_at  # keep serving the old keys until the next window
                return
            self._keys = keys
            self._fetched_at = self._attempted_at

    async def _fetch(self) -> dict[str, tuple[Any, str]]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        self.fetches += 1
        response = await self._client.get(self._url, timeout=self._timeout)
        response.raise_for_status()
        document = response.json()
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValueError("JWKS has no `keys` list")
        keys: dict[str, tuple[Any, str]] = {}
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                jwk = jwt.PyJWK(entry)
            except jwt.PyJWKError:
                continue  # key types we cannot use are skipped, not fatal
            keys[str(entry.get("kid", ""))] = (jwk.key, str(entry.get("kty", "")))
        return keys


class JwtVerifier:
    """Verify one issuer's bearer tokens and map their claims to a `Principal`."""

    def __init__(self, config: JwtConfig, *, audience: str, keys: KeySource) -> None:
        self._config = config
        self._audience = audience
        self._keys = keys

    @classmethod
    def from_config(
        cls, config: JwtConfig, *, resource_url: str | None, client: httpx.AsyncClient | None = None
    ) -> JwtVerifier:
        audience = config.audience or resource_url
        if audience is None:
            raise ConfigError("needs an audience or auth.resource_url", path="auth.jwt.audience")
        keys: KeySource
        if config.jwks_url is not None:
            keys = JwksKeys(
                config.jwks_url,
                client=client,
                cache_seconds=config.jwks_cache_seconds,
                min_refresh_seconds=config.jwks_min_refresh_seconds,
                timeout_seconds=config.jwks_timeout_seconds,
            )
        else:
            keys = StaticKey.from_file(str(config.public_key_file))
        return cls(config, audience=audience, keys=keys)

    async def aclose(self) -> None:
        if isinstance(self._keys, JwksKeys):
            await self._keys.aclose()

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; raises `AuthError` with a stable failure reason."""
        if len(token) > MAX_TOKEN_CHARS:
            raise auth_error(AuthFailure.MALFORMED)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise auth_error(AuthFailure.MALFORMED) from None
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._config.algorithms:
            raise auth_error(AuthFailure.UNSUPPORTED_ALGORITHM)
        if kid is not None and not isinstance(kid, str):
            raise auth_error(AuthFailure.MALFORMED)
        key, kty = await self._keys.key_for(kid)
        if _KEY_TYPES.get(alg[:2]) != kty:
            raise auth_error(AuthFailure.UNSUPPORTED_ALGORITHM)  # e.g. an ES256 header naming an RSA key
        claims = self._decode(token, key, alg)
        principal = self._principal(claims, kid)
        digest = token_digest(token)
        exp = claims.get("exp")
        return dataclasses.replace(
            principal,
            credential=f"jwt:{claims.get('iss', '')}|{claims.get('sub', principal.name)}|{digest}",
            token_digest=digest,
            expires_at=float(exp) if isinstance(exp, int | float) else None,
        )

    def _decode(self, token: str, key: Any, alg: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self._audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            for kind, failure in _ERRORS:
                if isinstance(exc, kind):
                    raise auth_error(failure) from None
            raise auth_error(AuthFailure.MALFORMED) from None
        return claims

    def _principal(self, claims: dict[str, Any], kid: str | None) -> Principal:
        name = claims.get(self._config.principal_claim)
        if not isinstance(name, str) or not name:
            raise auth_error(AuthFailure.MISSING_CLAIM)
        raw_roles = claims.get(self._config.roles_claim, [])
        if isinstance(raw_roles, str):
            roles = frozenset(raw_roles.split())
        elif isinstance(raw_roles, list):
            roles = frozenset(r for r in raw_roles if isinstance(r, str))
        else:
            roles = frozenset()
        kept = {k: claims[k] for k in (*_KEPT_CLAIMS, self._config.roles_claim) if k in claims}
        jti = claims.get("jti")
        return Principal(
            name=name,
            roles=roles,
            method="jwt",
            key_id=jti if isinstance(jti, str) else (kid or ""),
            claims=kept,
        )
