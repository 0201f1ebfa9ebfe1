"""JWT validation against a real local JWKS issuer, and the table-driven bypass suite."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bastion.auth.authenticator import Authenticator
from bastion.auth.config import AuthConfig
from bastion.auth.failures import failure_of
from bastion.errors import AuthError
from bastion.state import EmbeddedStateStore
from tests.auth.conftest import ISSUER, RESOURCE, Issuer, b64


def auth_config(issuer: Issuer, **jwt: Any) -> AuthConfig:
    return AuthConfig.model_validate(
        {
            "enabled": True,
            "resource_url": RESOURCE,
            "authorization_servers": [ISSUER],
            "jwt": {"jwks_url": issuer.url, "issuer": ISSUER, "leeway_seconds": 5, **jwt},
        }
    )


async def authenticate(authn: Authenticator, headers: dict[str, str]) -> str:
    """The failure reason, or `ok:<principal>`."""
    try:
        principal = await authn.authenticate(headers)
    except AuthError as exc:
        return str(failure_of(exc))
    return f"ok:{principal.name}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_rs256_and_es256_tokens_map_claims_to_principal_and_roles(issuer: Issuer) -> None:
    async with EmbeddedStateStore(":memory:") as store:
        authn = Authenticator.from_config(auth_config(issuer), store)
        try:
            for token in (issuer.rs256(), issuer.es256()):
                principal = await authn.authenticate(bearer(token))
                assert (principal.name, principal.roles, principal.method) == (
                    "alice",
                    frozenset({"dev", "ops"}),
                    "jwt",
                )
                assert principal.key_id == "token-1"
                assert principal.claims["iss"] == ISSUER
        finally:
            await authn.aclose()
    assert issuer.hits == 1  # the JWKS was fetched once and cached


async def test_roles_can_come_from_a_space_separated_claim(issuer: Issuer) -> None:
    async with EmbeddedStateStore(":memory:") as store:
        authn = Authenticator.from_config(
            auth_config(issuer, roles_claim="scope", principal_claim="email"), store
        )
        principal = await authn.authenticate(bearer(issuer.rs256(scope="read write", email="a@x")))
        await authn.aclose()
    assert (principal.name, principal.roles) == ("a@x", frozenset({"read", "write"}))


def bypass_cases(issuer: Issuer) -> list[tuple[str, dict[str, str], str]]:
    now = int(time.time())
    return [
        ("missing", {}, "missing"),
        ("empty bearer", {"Authorization": "Bearer "}, "malformed"),
        ("basic scheme", {"Authorization": "Basic YWxhZGRpbjpvcGVu"}, "malformed"),
        ("garbage", bearer("not.a.jwt"), "malformed"),
        ("expired", bearer(issuer.rs256(exp=now - 60)), "expired"),
        ("not yet valid", bearer(issuer.rs256(nbf=now + 600)), "not_yet_valid"),
        ("wrong audience", bearer(issuer.rs256(aud="https://other.example/mcp")), "wrong_audience"),
        ("wrong issuer", bearer(issuer.rs256(iss="https://evil.example")), "wrong_issuer"),
        ("no exp", bearer(issuer.rs256(exp=None)), "missing_claim"),
        ("alg none", bearer(issuer.unsigned()), "unsupported_algorithm"),
        ("hs256 with public key", bearer(issuer.hs256_with_public_key()), "unsupported_algorithm"),
        ("unknown kid", bearer(issuer.rs256(kid="rotated-away")), "unknown_key"),
        ("es256 header naming the rsa key", bearer(issuer.es256(kid="rsa1")), "unsupported_algorithm"),
        ("tampered payload", bearer(tamper(issuer.rs256())), "bad_signature"),
        ("two credentials", {**bearer(issuer.rs256()), "X-API-Key": "bst_x"}, "malformed"),
    ]


def tamper(token: str) -> str:
    """Swap in a payload naming another subject, keeping the original signature."""
    header, _payload, signature = token.split(".")
    forged = json.dumps(Issuer.claims(Issuer.__new__(Issuer), sub="admin", groups=["admin"])).encode()
    return f"{header}.{b64(forged)}.{signature}"


async def test_bypass_suite_every_bad_token_is_refused_with_its_reason(issuer: Issuer) -> None:
    async with EmbeddedStateStore(":memory:") as store:
        authn = Authenticator.from_config(auth_config(issuer), store)
        try:
            results = {name: await authenticate(authn, headers) for name, headers, _ in bypass_cases(issuer)}
        finally:
            await authn.aclose()
    assert results == {name: expected for name, _, expected in bypass_cases(issuer)}


async def test_errors_never_contain_the_token(issuer: Issuer) -> None:
    token = issuer.rs256(aud="https://other.example/mcp")
    async with EmbeddedStateStore(":memory:") as store:
        authn = Authenticator.from_config(auth_config(issuer), store)
        with pytest.raises(AuthError) as info:
            await authn.authenticate(bearer(token))
        await authn.aclose()
    rendered = repr(info.value.to_jsonrpc_error()) + str(info.value) + repr(info.value.__cause__)
    assert token not in rendered and token.split(".")[2] not in rendered
    assert info.value.to_jsonrpc_error() == {
        "code": -32001,
        "message": "invalid credentials",
        "data": {"reason": "unauthenticated", "authFailure": "wrong_audience"},
    }


async def test_an_unknown_kid_refreshes_the_jwks_at_most_once_per_window(issuer: Issuer) -> None:
    async with EmbeddedStateStore(":memory:") as store, httpx.AsyncClient() as client:
        authn = Authenticator.from_config(
            auth_config(issuer, jwks_min_refresh_seconds=0), store, client=client
        )
        assert await authenticate(authn, bearer(issuer.rs256())) == "ok:alice"
        assert issuer.hits == 1
        # the issuer rotates in a new key: the first token with its kid triggers a refresh
        new = Issuer()
        issuer.extra_keys = [{**new.jwks()["keys"][0], "kid": "rsa2"}]
        assert await authenticate(authn, bearer(new.rs256(kid="rsa2"))) == "ok:alice"
        assert issuer.hits == 2
        await authn.aclose()

    async with EmbeddedStateStore(":memory:") as store, httpx.AsyncClient() as client:
        authn = Authenticator.from_config(
            auth_config(issuer, jwks_min_refresh_seconds=60), store, client=client
        )
        hits = issuer.hits
        for n in range(20):
            assert await authenticate(authn, bearer(issuer.rs256(kid=f"made-up-{n}"))) == "unknown_key"
        assert issuer.hits == hits + 1  # one initial fetch, no refresh storm
        await authn.aclose()


async def test_a_static_public_key_file_verifies_without_jwks(issuer: Issuer, tmp_path: Path) -> None:
    pem = tmp_path / "idp.pem"
    pem.write_bytes(issuer.rsa_public_pem())
    config = AuthConfig.model_validate(
        {
            "enabled": True,
            "resource_url": RESOURCE,
            "authorization_servers": [ISSUER],
            "jwt": {"public_key_file": str(pem), "issuer": ISSUER, "algorithms": ["RS256"]},
        }
    )
    async with EmbeddedStateStore(":memory:") as store:
        authn = Authenticator.from_config(config, store)
        assert await authenticate(authn, bearer(issuer.rs256())) == "ok:alice"
        assert await authenticate(authn, bearer(issuer.hs256_with_public_key())) == "unsupported_algorithm"
        assert await authenticate(authn, bearer(issuer.es256())) == "unsupported_algorithm"
        await authn.aclose()


@pytest.mark.parametrize(
    ("jwt_section", "message"),
    [
        ({"algorithms": ["HS256"]}, "not allowed"),
        ({"algorithms": ["none"]}, "not allowed"),
        ({"leeway_seconds": 3600}, "less than or equal to 300"),
    ],
)
def test_unsafe_jwt_settings_are_rejected_at_load(jwt_section: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AuthConfig.model_validate(
            {
                "resource_url": RESOURCE,
                "authorization_servers": [ISSUER],
                "jwt": {"jwks_url": "https://idp/jwks", "issuer": ISSUER, **jwt_section},
            }
        )


async def test_disabled_auth_yields_the_anonymous_principal() -> None:
    async with EmbeddedStateStore(":memory:") as store:
        authn = Authenticator.from_config(AuthConfig(), store)
        principal = await authn.authenticate({})
    assert principal.method == "none"
