"""Attribution: each event names the credential actually presented (API key id; JWT issuer, subject and token
digest, never the token) and the roles in force for that request."""

from __future__ import annotations

import orjson
import pytest

from bastion.audit.event import exchange_content
from bastion.auth.apikeys import ApiKeyStore
from bastion.auth.authenticator import Authenticator
from bastion.auth.principal import Principal, token_digest
from bastion.pipeline.exchange import Exchange, SessionInfo
from bastion.state import EmbeddedStateStore
from tests.auth.conftest import ISSUER, Issuer, issuer
from tests.auth.test_jwt_and_authenticator import auth_config, bearer

pytestmark = pytest.mark.anyio
__all__ = ["issuer"]  # the JWKS issuer fixture, shared with the auth tests


def _content(principal: Principal) -> dict[str, object]:
    info = SessionInfo(session_id="s1", transport="streamable-http", principal=principal)
    exchange = Exchange(session=info, method="tools/call", params={"name": "calc__add", "arguments": {}})
    return exchange_content(exchange, max_argument_bytes=4096)


async def test_a_jwt_call_names_issuer_subject_token_digest_and_roles_but_never_the_token(
    issuer: Issuer,
) -> None:
    async with EmbeddedStateStore(":memory:") as store:
        authn = Authenticator.from_config(auth_config(issuer), store)
        try:
            token = issuer.rs256()
            principal = await authn.authenticate(bearer(token))
            other = await authn.authenticate(bearer(issuer.es256()))
        finally:
            await authn.aclose()
    content = _content(principal)
    assert {
        k: content[k] for k in ("auth_method", "key_id", "issuer", "subject", "token_digest", "roles")
    } == {
        "auth_method": "jwt",
        "key_id": "token-1",
        "issuer": ISSUER,
        "subject": "alice",
        "token_digest": token_digest(token),
        "roles": ["dev", "ops"],
    }
    assert _content(other)["token_digest"] not in ("", content["token_digest"])  # two tokens told apart
    raw = orjson.dumps(content).decode()
    assert token not in raw and token.split(".")[2] not in raw


async def test_an_api_key_call_names_the_key_id_and_its_roles() -> None:
    async with EmbeddedStateStore(":memory:") as store:
        keys = ApiKeyStore(store)
        secret, info = await keys.create("ci-bot", roles=["deploy"])
        principal = await keys.verify(secret)
    content = _content(principal)
    assert (content["auth_method"], content["key_id"], content["roles"]) == (
        "api_key",
        info.key_id,
        ["deploy"],
    )
    assert (content["issuer"], content["subject"], content["token_digest"]) == ("", "", "")
    assert secret not in orjson.dumps(content).decode()
