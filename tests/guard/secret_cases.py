"""Hand-written secrets and PII in the forms that evade a plain regex: encoded, split across fields, named only by
their key, and structural PII (a card as a JSON number, a lower-case IBAN, a spelled-out e-mail). Written for these
tests from invented values; copied from no dataset.

Each payload is what a tool result or argument carries (a string or JSON), so the whole walk is exercised.
"""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any, Final

_GH: Final = "ghp_" + "R8fK2mQ7vX1pL9sT4wN6yB3cH5jD0gA2eZ7u"
"""An invented GitHub token of the right shape (checksum not needed by the detector)."""
_STRIPE: Final = "sk_live_" + "51Hq8ZxT2mVn4Kp7Lr9Wc3Ya6Bd"
_AWS: Final = "AKIA" + "QX7R2M4N6P3T5W7Z"
_PASSWORD: Final = "Plum-Harbor-91!vex"

SECRET_PAYLOADS: Final[tuple[Any, ...]] = (
    {"text": "token (base64): " + base64.b64encode(_GH.encode()).decode()},
    {"text": "token=" + urllib.parse.quote(_STRIPE, safe="")},
    {"headers": {"Authorization": "Basic " + base64.b64encode(f"svc-deploy:{_PASSWORD}".encode()).decode()}},
    {
        "log": "curl -H 'Authorization: Basic "
        + base64.b64encode(b"admin:Vq93-lark-Tide").decode()
        + "' https://x.test"
    },
    {"key_id": _AWS[:8], "key_rest": _AWS[8:]},
    {"content": [{"type": "text", "text": _GH[:18]}, {"type": "text", "text": _GH[18:]}]},
    {"password": _PASSWORD},
    {"client_secret": "q7Vx-2Lm9-Tr4K-88wz"},
    {"access_token": "ya29.Zx8vQm2LpR7tK4nW9cY3bH6jF1dG"},
    {"db": {"Password": "Orchard^Lane^2231"}},
    "export STRIPE_KEY=" + "".join(f"%{b:02X}" for b in _STRIPE.encode()),
)
"""Ten-plus secrets, each hidden one way; the detector must see every one."""

NOT_SECRETS: Final[tuple[Any, ...]] = (
    {"password": "<your password here>"},
    {"password_policy": "at least 12 characters"},
    {"access_token_ttl": 3600},
    {"text": "Set the client_secret field in settings.yaml before running."},
    {"sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
    {"id": "550e8400-e29b-41d4-a716-446655440000"},
    {"text": "Basic authentication is disabled; use OAuth instead."},
)
"""Credential-like names and values that are not credentials."""

PII_PAYLOADS: Final[tuple[Any, ...]] = (
    {"card": 4539148803436467},
    {"payment": {"number": 5425233430109903, "exp": "04/28"}},
    {"text": "pay to gb82 west 1234 5698 7654 32 please"},
    {"text": "contact: maria.lopez [at] example [dot] com"},
    {"text": "contact: j.doe (at) mail (dot) example (dot) org"},
    {"text": "Customer SSN 536-22-8741 on file"},
    {"text": "call me at +44 20 7946 0958"},
)
"""PII in structural forms: a number where a string was expected, lower case, spelled-out punctuation."""

NOT_PII: Final[tuple[Any, ...]] = (
    {"text": "Your order no. 7731 2208 4415 is on its way."},
    {"text": "Tracking number 1Z 999 AA1 01 2345 6784 (UPS)."},
    {"text": "Driver's licence no. S530-4127-8891 renewed."},
    {"text": "Instances query 169.254.169.254 for their metadata; never expose it."},
    {"count": 4539148803436468},
    {"text": "Build 2024.11.3 took 1234567890 ms."},
)
"""The false positives the issue names: order, tracking and licence numbers, the metadata address in prose."""
