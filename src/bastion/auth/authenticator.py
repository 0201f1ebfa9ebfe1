"""`Authenticator`: request headers in, a `Principal` out (or `AuthError` with a stable reason).

Rules:
- Credentials come from `Authorization: Bearer ...` or `X-API-Key`, never from the query string or body.
- Both headers at once is refused as malformed (two identities in one request is always a mistake or an attack).
- A bearer value starting with `bst_` is an API key; anything else is a JWT.
- With auth disabled every request is `ANONYMOUS`; the lead's startup check refuses that on non-loopback addresses.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import httpx

from bastion.auth.apikeys import PREFIX, ApiKeyStore
from bastion.auth.config import AuthConfig
from bastion.auth.failures import AuthFailure, auth_error
from bastion.state.base import RecordStore
from bastion.types import ANONYMOUS, Principal

if TYPE_CHECKING:
    # PyJWT pulls in `cryptography` (about 8 MB of RSS); only a config with `auth.jwt` imports it (in from_config).
    from bastion.auth.jwt_verifier import JwtVerifier


class Authenticator:
    """Checks one request's credentials. Build it with `from_config`; close it with `aclose()`."""

    def __init__(
        self,
        *,
        enabled: bool,
        api_keys: ApiKeyStore | None,
        jwt: JwtVerifier | None,
        local: Principal | None = None,
    ) -> None:
        self.enabled = enabled
        self._api_keys = api_keys
        self._jwt = jwt
        self._local = local or Principal(name="local", method="local")

    @classmethod
    def from_config(
        cls, config: AuthConfig, store: RecordStore, *, client: httpx.AsyncClient | None = None
    ) -> Authenticator:
        """Build from the `auth:` section; `store` holds API keys, `client` (optional) fetches the JWKS."""
        jwt = None
        if config.jwt is not None:
            from bastion.auth.jwt_verifier import JwtVerifier

            jwt = JwtVerifier.from_config(config.jwt, resource_url=config.resource_url, client=client)
        local = Principal(
            name=config.stdio_principal.name, roles=frozenset(config.stdio_principal.roles), method="local"
        )
        return cls(
            enabled=config.enabled,
            api_keys=ApiKeyStore(store) if config.api_keys.enabled else None,
            jwt=jwt,
            local=local,
        )

    async def aclose(self) -> None:
        if self._jwt is not None:
            await self._jwt.aclose()

    def stdio_principal(self) -> Principal:
        """The configured local user of the stdio transport."""
        return self._local

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller of a request with these headers (names matched case-insensitively).

        Raises:
            AuthError: `data["authFailure"]` says why (missing, malformed, expired, bad_signature, ...).
        """
        if not self.enabled:
            return ANONYMOUS
        lowered = {k.lower(): v for k, v in headers.items()}
        authorization = lowered.get("authorization")
        api_key = lowered.get("x-api-key")
        if authorization is not None and api_key is not None:
            raise auth_error(AuthFailure.MALFORMED)
        if api_key is not None:
            return await self._verify_api_key(api_key.strip())
        if authorization is None:
            raise auth_error(AuthFailure.MISSING)
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential or " " in credential:
            raise auth_error(AuthFailure.MALFORMED)
        if credential.startswith(PREFIX):
            return await self._verify_api_key(credential)
        if self._jwt is None:
            raise auth_error(AuthFailure.METHOD_DISABLED)
        return await self._jwt.verify(credential)

    async def _verify_api_key(self, key: str) -> Principal:
        if self._api_keys is None:
            raise auth_error(AuthFailure.METHOD_DISABLED)
        return await self._api_keys.verify(key)
