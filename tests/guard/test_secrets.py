"""The secrets detector: provider formats, structural secrets, generic assignments, and the look-alikes it must skip."""

from __future__ import annotations

import pytest

from bastion.guard.detector import Direction, ScanContext
from bastion.guard.detectors.secrets import SecretsDetector
from tests.guard import tokens

CTX = ScanContext(direction=Direction.RESPONSE, path="$.text")
DETECTOR = SecretsDetector()


def types(text: str) -> list[str]:
    return [f.type for f in DETECTOR.scan(text, CTX)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"aws_access_key_id = {tokens.aws_key()}", "aws_access_key"),
        (f"export GITHUB_TOKEN={tokens.github_token()}", "github_token"),
        (f"stripe: {tokens.stripe_key()}", "stripe_key"),
        (f"bot {tokens.slack_token()} posted", "slack_token"),
        (f"OPENAI={tokens.openai_key()}", "openai_key"),
        (tokens.private_key_block(), "private_key"),
        ("postgres://app:Xk9vQ2mLp8@db.internal:5432/app", "connection_string"),
    ],
)
def test_known_credential_formats_are_found(text: str, expected: str) -> None:
    assert expected in types(text)


def test_password_assignment_with_a_random_value_is_a_password() -> None:
    assert types(f'DB_PASSWORD="{tokens.random_password()}"') == ["password"]


def test_high_entropy_value_behind_a_token_key_is_a_generic_secret() -> None:
    assert types('"serviceToken": "q8Zr2LmX0vT4nB7kW1pC9sYd"') == ["generic_secret"]


@pytest.mark.parametrize(
    "text",
    [
        "sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "request_id: 3f2c1d9e-7b8a-4c5d-9e6f-1a2b3c4d5e6f",
        "commit 2fd4e1c67a2d28fced849ee1bb76e7391b93eb12",
        "token = get_token(user)",
        "password = os.environ['DB_PASSWORD']",
        "api_key: ${API_KEY}",
        "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "key_length = XSalsa20.key_length",
        "the password must be at least 12 characters",
        "AWS docs use AKIAIOSFODNN7EXAMPLE as the example key",
        "postgres://user:password@localhost/db",
        "curl -u $USER:$PASSWORD https://example.com",
    ],
)
def test_look_alikes_and_placeholders_are_not_secrets(text: str) -> None:
    assert types(text) == []


def test_overlapping_rules_report_the_most_specific_type_once() -> None:
    found = DETECTOR.scan(f"github_token = {tokens.github_token()}", CTX)
    assert [f.type for f in found] == ["github_token"]


def test_findings_carry_the_span_and_path_but_never_the_text() -> None:
    key = tokens.aws_key()
    text = f"the key is {key}."
    (finding,) = DETECTOR.scan(text, CTX)
    assert text[finding.start : finding.end] == key
    assert finding.path == "$.text"
    assert key not in repr(finding.to_dict())


def test_allow_list_silences_a_documented_test_value() -> None:
    from bastion.guard.config import SecretsConfig

    key = tokens.aws_key()
    assert SecretsDetector(SecretsConfig(allow=[key])).scan(key, CTX) == []


def test_custom_patterns_are_reported_under_their_type() -> None:
    from bastion.guard.config import CustomPattern, SecretsConfig

    config = SecretsConfig(custom=[CustomPattern(type="acme_token", pattern=r"\bacme_[a-z0-9]{20}\b")])
    assert [f.type for f in SecretsDetector(config).scan("use acme_0123456789abcdefghij", CTX)] == [
        "acme_token"
    ]
