"""The PII detector: validated personal data, and numbers that only look like it."""

from __future__ import annotations

import pytest

from bastion.guard.config import PiiConfig
from bastion.guard.detector import Direction, ScanContext
from bastion.guard.detectors.pii import PiiDetector

CTX = ScanContext(direction=Direction.RESPONSE, path="$")
DETECTOR = PiiDetector(
    PiiConfig(
        types=[
            "email",
            "phone_number",
            "credit_card",
            "iban",
            "us_ssn",
            "ip_address",
            "national_id",
            "postal_address",
        ]
    )
)


def types(text: str) -> list[str]:
    return [f.type for f in DETECTOR.scan(text, CTX)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("write to jane.roe@mail.example.org today", "email"),
        ("call me on +44 20 7946 0958", "phone_number"),
        ("Phone: (415) 555-2671", "phone_number"),
        ("card 4539 1488 0343 6467 expires soon", "credit_card"),
        ("IBAN DE89 3704 0044 0532 0130 00", "iban"),
        ("my SSN is 512-44-7812", "us_ssn"),
        ("connect from 203.0.113.77 failed", "ip_address"),
        ("NINO: AB 12 34 56 C", "national_id_uk"),
        ("DNI 12345678Z", "national_id_es"),
        ("CPF 390.533.447-05", "national_id_br"),
        ("ships to 1600 Pennsylvania Avenue", "postal_address"),
    ],
)
def test_personal_data_is_found_and_typed(text: str, expected: str) -> None:
    assert expected in types(text)


@pytest.mark.parametrize(
    "text",
    [
        "card 4539 1488 0343 6468",  # fails Luhn
        "order 1234567890123456 shipped",  # no issuer, no card context, fails Luhn
        "released 2024-05-17 as v1.2.3.4",
        "ssn 000-12-3456 is invalid",
        "IBAN DE89 3704 0044 0532 0130 01",  # bad mod-97
        "localhost is 127.0.0.1 and mask 255.255.255.0",
        "timestamp 1716900000000 and id 48151623",
        "logo@2x.png",
        "3f2c1d9e-7b8a-4c5d-9e6f-1a2b3c4d5e6f",
    ],
)
def test_look_alikes_are_not_personal_data(text: str) -> None:
    assert types(text) == []


def test_a_card_number_wins_over_a_phone_reading_of_the_same_digits() -> None:
    assert types("Visa card 4539148803436467") == ["credit_card"]


def test_disabled_families_are_not_reported() -> None:
    only_email = PiiDetector(PiiConfig(types=["email"]))
    assert [f.type for f in only_email.scan("a@b.example and 512-44-7812 (SSN)", CTX)] == ["email"]


def test_unknown_families_are_refused_at_config_time() -> None:
    with pytest.raises(ValueError, match="unknown PII types"):
        PiiConfig(types=["names"])


@pytest.mark.parametrize("separator", ["\u00a0", "\u2007", "\u202f"])
@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (["card 4539", "1488", "0343", "6467 expires soon"], "credit_card"),
        (["IBAN DE89", "3704", "0044", "0532", "0130", "00"], "iban"),
        (["my SSN is 536", "22", "1234"], "us_ssn"),
        (["call me on +44", "20", "7946", "0958"], "phone_number"),
    ],
)
def test_digit_groups_separated_by_no_break_spaces_are_the_same_number(
    separator: str, parts: list[str], expected: str
) -> None:
    # French and typeset text group digits with these; a number pasted from a web page carries them. They passed.
    assert expected in types(separator.join(parts))


def test_a_card_number_with_non_breaking_hyphens_is_found_and_its_span_is_the_number() -> None:
    text = "card 4539\u20111488\u20110343\u20116467 thanks"
    found = [f for f in DETECTOR.scan(text, CTX) if f.type == "credit_card"]
    assert [(f.start, f.end) for f in found] == [(5, 24)]
