"""Attack classes, not corpus rows: one test per hand-written case of `class_cases` and `secret_cases` (eight
languages, keyword-free tool poisoning, encoded and split secrets, structural PII, and the false positives that
must pass)."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.guard.actions import Action
from bastion.guard.engine import Guard
from tests.guard.blind_cases import (
    BLIND_BENIGN,
    BLIND_BENIGN_TOOLS,
    BLIND_MULTILINGUAL,
    BLIND_POISONING,
    MISSED,
)
from tests.guard.class_cases import (
    BENIGN_TOOLS,
    MULTILINGUAL_BENIGN,
    MULTILINGUAL_CLASSES,
    POLITE_HIDDEN_ACTIONS,
    POLITE_POISONING,
    YOUR_INSTRUCTIONS_NEGATED,
    YOUR_INSTRUCTIONS_OVERRIDES,
)
from tests.guard.secret_cases import NOT_PII, NOT_SECRETS, PII_PAYLOADS, SECRET_PAYLOADS


@pytest.fixture(scope="module")
def guard() -> Guard:
    return Guard()


def _result(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}]}


def _detectors(guard: Guard, direction: str, payload: Any) -> set[str]:
    return {f.detector for f in guard.inspect(direction, payload).findings}


@pytest.mark.parametrize(
    "description", POLITE_POISONING, ids=[f"poison-{i}" for i in range(len(POLITE_POISONING))]
)
def test_keyword_free_tool_poisoning_is_withheld(guard: Guard, description: str) -> None:
    result = guard.inspect("tool", {"name": "helper", "description": description})
    assert result.blocked
    assert "poisoning" in {f.detector for f in result.findings}


@pytest.mark.parametrize("description", BENIGN_TOOLS, ids=[f"benign-{i}" for i in range(len(BENIGN_TOOLS))])
def test_benign_tools_with_the_same_verbs_pass(guard: Guard, description: str) -> None:
    assert guard.inspect("tool", {"name": "helper", "description": description}).action is Action.ALLOW


@pytest.mark.parametrize(
    ("language", "attack", "text"), MULTILINGUAL_CLASSES, ids=[f"{c[0]}-{c[1]}" for c in MULTILINGUAL_CLASSES]
)
def test_each_attack_class_is_found_in_each_language(
    guard: Guard, language: str, attack: str, text: str
) -> None:
    assert "injection" in _detectors(guard, "response", _result(text))


@pytest.mark.parametrize(
    ("language", "attack", "text"),
    [c for c in MULTILINGUAL_CLASSES if c[1] in ("override", "exfiltration", "hidden_action")],
    ids=[
        f"{c[0]}-{c[1]}"
        for c in MULTILINGUAL_CLASSES
        if c[1] in ("override", "exfiltration", "hidden_action")
    ],
)
def test_overrides_exfiltration_and_hidden_actions_are_blocked_in_every_language(
    guard: Guard, language: str, attack: str, text: str
) -> None:
    assert guard.inspect("response", _result(text)).blocked


@pytest.mark.parametrize(
    ("language", "text"),
    POLITE_HIDDEN_ACTIONS,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(POLITE_HIDDEN_ACTIONS)],
)
def test_a_side_action_asked_politely_with_an_infinitive_is_blocked(
    guard: Guard, language: str, text: str
) -> None:
    assert guard.inspect("response", _result(text)).blocked


@pytest.mark.parametrize(
    ("language", "text"), YOUR_INSTRUCTIONS_OVERRIDES, ids=[c[0] for c in YOUR_INSTRUCTIONS_OVERRIDES]
)
def test_ignoring_your_instructions_is_an_override_in_every_language(
    guard: Guard, language: str, text: str
) -> None:
    assert guard.inspect("response", _result(text)).blocked


@pytest.mark.parametrize("text", YOUR_INSTRUCTIONS_NEGATED, ids=["fr", "es", "pt", "de", "ru"])
def test_advice_not_to_ignore_your_instructions_is_no_override(guard: Guard, text: str) -> None:
    assert "injection" not in _detectors(guard, "response", _result(text))


@pytest.mark.parametrize(
    "text", MULTILINGUAL_BENIGN, ids=[f"benign-{i}" for i in range(len(MULTILINGUAL_BENIGN))]
)
def test_ordinary_sentences_with_the_attacks_nouns_raise_no_injection(guard: Guard, text: str) -> None:
    assert "injection" not in _detectors(guard, "response", _result(text))


@pytest.mark.parametrize("payload", SECRET_PAYLOADS, ids=[f"secret-{i}" for i in range(len(SECRET_PAYLOADS))])
@pytest.mark.parametrize("direction", ["request", "response"])
def test_encoded_split_and_named_secrets_are_found_both_ways(
    guard: Guard, direction: str, payload: Any
) -> None:
    assert "secrets" in _detectors(guard, direction, payload)


@pytest.mark.parametrize("payload", NOT_SECRETS, ids=[f"not-secret-{i}" for i in range(len(NOT_SECRETS))])
def test_credential_words_without_credentials_are_not_secrets(guard: Guard, payload: Any) -> None:
    assert "secrets" not in _detectors(guard, "response", payload)


@pytest.mark.parametrize("payload", PII_PAYLOADS, ids=[f"pii-{i}" for i in range(len(PII_PAYLOADS))])
def test_structural_pii_is_found(guard: Guard, payload: Any) -> None:
    assert "pii" in _detectors(guard, "response", payload)


@pytest.mark.parametrize("payload", NOT_PII, ids=[f"not-pii-{i}" for i in range(len(NOT_PII))])
def test_order_tracking_licence_numbers_and_the_metadata_address_are_not_pii(
    guard: Guard, payload: Any
) -> None:
    assert "pii" not in _detectors(guard, "response", payload)


def _known_miss(text: str) -> tuple[pytest.MarkDecorator, ...]:
    return (
        (
            pytest.mark.xfail(
                reason="known miss of the blind set (measured once, before tuning): see blind_cases.MISSED; strict, so a fix shows",
                strict=True,
            ),
        )
        if text in MISSED
        else ()
    )


@pytest.mark.parametrize(
    "description",
    [pytest.param(d, marks=_known_miss(d), id=f"blind-poison-{i}") for i, d in enumerate(BLIND_POISONING)],
)
def test_blind_set_tool_poisoning_is_withheld(guard: Guard, description: str) -> None:
    assert "poisoning" in _detectors(guard, "tool", {"name": "helper", "description": description})


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(t, marks=_known_miss(t), id=f"blind-{lang}-{i}")
        for i, (lang, t) in enumerate(BLIND_MULTILINGUAL)
    ],
)
def test_blind_set_injections_are_found(guard: Guard, text: str) -> None:
    assert "injection" in _detectors(guard, "response", _result(text))


@pytest.mark.parametrize("description", BLIND_BENIGN_TOOLS, ids=[f"blind-benign-tool-{i}" for i in range(6)])
def test_blind_set_benign_tools_pass(guard: Guard, description: str) -> None:
    assert guard.inspect("tool", {"name": "helper", "description": description}).action is Action.ALLOW


@pytest.mark.parametrize("text", BLIND_BENIGN, ids=[f"blind-benign-{i}" for i in range(len(BLIND_BENIGN))])
def test_blind_set_benign_sentences_raise_no_injection(guard: Guard, text: str) -> None:
    assert "injection" not in _detectors(guard, "response", _result(text))
