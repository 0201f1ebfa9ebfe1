"""API keys: shown once, stored hashed, found by id, refused when revoked or expired."""

from __future__ import annotations

import pytest

from bastion.auth.apikeys import NAMESPACE, ApiKeyStore, parse_duration
from bastion.auth.authenticator import Authenticator
from bastion.auth.config import AuthConfig
from bastion.auth.failures import failure_of
from bastion.errors import AuthError
from bastion.state import EmbeddedStateStore


async def failure(keys: ApiKeyStore, key: str) -> str:
    try:
        await keys.verify(key)
    except AuthError as exc:
        return str(failure_of(exc))
    return "ok"


async def test_a_created_key_authenticates_as_its_principal_with_its_roles() -> None:
    async with EmbeddedStateStore(":memory:") as store:
        keys = ApiKeyStore(store)
        key, info = await keys.create("ci-bot", ["readonly", "ci"])
        assert key.startswith(f"bst_{info.key_id}_")
        principal = await keys.verify(key)
        assert (principal.name, principal.roles, principal.method, principal.key_id) == (
            "ci-bot", frozenset({"readonly", "ci"}), "api_key", info.key_id,
        )  # fmt: skip


async def test_only_a_salted_hash_is_stored() -> None:
    async with EmbeddedStateStore(":memory:") as store:
        keys = ApiKeyStore(store)
        key, info = await keys.create("a")
        record = await store.get_record(NAMESPACE, info.key_id)
        secret = key.split("_", 2)[2]
        assert record is not None and secret not in repr(record) and key not in repr(record)
        assert set(record) == {
            "id",
            "principal",
            "roles",
            "created_at",
            "expires_at",
            "revoked_at",
            "salt",
            "hash",
        }
        _, other = await keys.create("a")
        other_record = await store.get_record(NAMESPACE, other.key_id)
        assert other_record is not None and other_record["salt"] != record["salt"]


async def test_bypass_suite_for_api_keys() -> None:
    now = [1000.0]
    async with EmbeddedStateStore(":memory:") as store:
        keys = ApiKeyStore(store, clock=lambda: now[0])
        good, _ = await keys.create("a")
        revoked, revoked_info = await keys.create("b")
        expiring, _ = await keys.create("c", expires_in=60)
        assert await keys.revoke(revoked_info.key_id)
        assert not await keys.revoke("0000000000000000")
        now[0] += 61
        key_id = good.split("_")[1]
        cases = {
            "revoked": revoked,
            "expired": expiring,
            "unknown_key": "bst_0123456789abcdef_" + "A" * 43,
            "malformed": "bst_short_x",
        }
        results = {name: await failure(keys, key) for name, key in cases.items()}
        assert results == {name: name for name in cases}
        wrong_secret = f"bst_{key_id}_{'B' * 43}"
        assert await failure(keys, wrong_secret) == "unknown_key"
        assert await failure(keys, good) == "ok"


async def test_listing_shows_revoked_keys_without_secrets() -> None:
    async with EmbeddedStateStore(":memory:") as store:
        keys = ApiKeyStore(store)
        key, info = await keys.create("a", ["r"])
        await keys.revoke(info.key_id)
        [listed] = await keys.list()
        assert listed.key_id == info.key_id and listed.revoked_at is not None
        assert key.split("_", 2)[2] not in repr(listed.to_dict())


async def test_keys_work_as_bearer_or_x_api_key_but_not_both() -> None:
    async with EmbeddedStateStore(":memory:") as store:
        authn = Authenticator.from_config(AuthConfig(enabled=True), store)
        key, _ = await ApiKeyStore(store).create("a")
        assert (await authn.authenticate({"authorization": f"Bearer {key}"})).name == "a"
        assert (await authn.authenticate({"X-API-Key": key})).name == "a"
        with pytest.raises(AuthError) as info:
            await authn.authenticate({"authorization": f"Bearer {key}", "x-api-key": key})
        assert info.value.data == {"authFailure": "malformed"}
        with pytest.raises(AuthError) as info:
            await authn.authenticate({"authorization": "Bearer some.jwt.token"})
        assert info.value.data == {"authFailure": "method_disabled"}  # no jwt configured


async def test_disabled_api_keys_are_refused() -> None:
    async with EmbeddedStateStore(":memory:") as store:
        key, _ = await ApiKeyStore(store).create("a")
        config = AuthConfig.model_validate(
            {
                "enabled": True,
                "api_keys": {"enabled": False},
                "resource_url": "https://gw/mcp",
                "authorization_servers": ["https://idp"],
                "jwt": {"jwks_url": "https://idp/jwks", "issuer": "https://idp"},
            }
        )
        authn = Authenticator.from_config(config, store)
        with pytest.raises(AuthError) as info:
            await authn.authenticate({"x-api-key": key})
        assert info.value.data == {"authFailure": "method_disabled"}
        await authn.aclose()


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 2592000.0), ("12h", 43200.0), ("15m", 900.0), ("2w", 1209600.0)]
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0d", "-1d", "1y", "d", "1.5h"])
def test_bad_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
