"""A real JWKS issuer on 127.0.0.1 (Starlette under uvicorn) with RSA and EC keys, and token helpers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

ISSUER = "https://idp.example.test"
RESOURCE = "https://gateway.example.test/mcp"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Issuer:
    """Signs tokens with keys whose public halves the JWKS server publishes."""

    url: str = ""
    rsa_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    ec_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    hits: int = 0
    extra_keys: list[dict[str, Any]] = field(default_factory=list)

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec_key.public_key()))
        return {
            "keys": [
                {**rsa_jwk, "kid": "rsa1", "use": "sig"},
                {**ec_jwk, "kid": "ec1", "use": "sig"},
                *self.extra_keys,
            ]
        }

    def rsa_public_pem(self) -> bytes:
        return self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER, "aud": RESOURCE, "sub": "alice", "groups": ["dev", "ops"],
            "iat": now, "exp": now + 300, "jti": "token-1",
        }  # fmt: skip
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def rs256(self, kid: str = "rsa1", **claims: Any) -> str:
        return jwt.encode(self.claims(**claims), self.rsa_key, algorithm="RS256", headers={"kid": kid})

    def es256(self, kid: str = "ec1", **claims: Any) -> str:
        return jwt.encode(self.claims(**claims), self.ec_key, algorithm="ES256", headers={"kid": kid})

    def unsigned(self, **claims: Any) -> str:
        header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "rsa1"}).encode())
        return f"{header}.{b64(json.dumps(self.claims(**claims)).encode())}."

    def hs256_with_public_key(self, **claims: Any) -> str:
        """The classic confusion attack: HMAC keyed with the RSA public key the server trusts."""
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}).encode())
        signing_input = f"{header}.{b64(json.dumps(self.claims(**claims)).encode())}"
        signature = hmac.new(self.rsa_public_pem(), signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64(signature)}"


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    state = Issuer()

    async def jwks(_request: Request) -> JSONResponse:
        state.hits += 1
        return JSONResponse(state.jwks())

    app = Starlette(routes=[Route("/jwks", jwks)])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # listening before uvicorn starts: clients can connect at once, no readiness race
    state.url = f"http://127.0.0.1:{sock.getsockname()[1]}/jwks"
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        try:
            yield state
        finally:
            server.should_exit = True
    sock.close()
