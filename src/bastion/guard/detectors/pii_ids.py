"""National identifiers of major countries: a format regex each, and the checksum that makes it more than a number.

Rules:
- Every ID here has a checksum or a structure check; IDs whose format is just "N digits" (NHS, BSN, Steuer-ID,
  TFN, PESEL, SIN, Aadhaar without spacing) also need a context word nearby, because random numbers pass a mod-11
  check one time in eleven.
- Finding types are `national_id_<country>`, so `pii.national_id_*` configures them all at once.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from bastion.guard.detectors.textutil import luhn_ok, only_digits, window

Validator = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class IdSpec:
    """One national ID format."""

    type: str
    pattern: str
    check: Validator
    context: tuple[str, ...] = ()
    """Words one of which must appear just before the number (empty: the format is distinctive enough)."""


def _date_ok(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def _es(value: str) -> bool:
    v = value.replace("-", "").replace(" ", "").upper()
    body = v[:-1]
    if body[0] in "XYZ":
        body = str("XYZ".index(body[0])) + body[1:]
    return body.isdigit() and "TRWAGMYFPDXBNJZSQVHLCKE"[int(body) % 23] == v[-1]


_IT_ODD: Final = [
    1,
    0,
    5,
    7,
    9,
    13,
    15,
    17,
    19,
    21,
    2,
    4,
    18,
    20,
    11,
    3,
    6,
    8,
    12,
    14,
    16,
    10,
    22,
    25,
    24,
    23,
]


def _it(value: str) -> bool:
    v = value.upper()
    total = 0
    for i, ch in enumerate(v[:15]):
        n = int(ch) if ch.isdigit() else ord(ch) - 65
        total += _IT_ODD[n] if i % 2 == 0 else n
    return chr(65 + total % 26) == v[15]


def _fr(value: str) -> bool:
    v = value.replace(" ", "").upper()
    body, key = v[:13], v[13:]
    body = body.replace("2A", "19").replace("2B", "18")
    return body.isdigit() and key.isdigit() and 97 - int(body) % 97 == int(key)


def _mod11_10(digits: str) -> bool:
    """ISO 7064 MOD 11,10 (German tax ID)."""
    product = 10
    for ch in digits[:-1]:
        total = (int(ch) + product) % 10 or 10
        product = (total * 2) % 11
    check = (11 - product) % 10
    return check == int(digits[-1])


def _de(value: str) -> bool:
    d = only_digits(value)
    return len(d) == 11 and d[0] != "0" and _mod11_10(d)


def _weighted(digits: str, weights: tuple[int, ...], modulus: int) -> int:
    return sum(int(c) * w for c, w in zip(digits, weights, strict=False)) % modulus


def _nl(value: str) -> bool:
    d = only_digits(value)
    if len(d) != 9:
        return False
    total = sum(int(c) * w for c, w in zip(d[:8], range(9, 1, -1), strict=True)) - int(d[8])
    return total % 11 == 0 and total != 0


def _nhs(value: str) -> bool:
    d = only_digits(value)
    if len(d) != 10:
        return False
    check = 11 - _weighted(d, tuple(range(10, 1, -1)), 11)
    return (0 if check == 11 else check) == int(d[9]) and check != 10


_VERHOEFF_D: Final = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
_VERHOEFF_P: Final = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]


def _aadhaar(value: str) -> bool:
    d = only_digits(value)
    if len(d) != 12 or d[0] in "01":
        return False
    c = 0
    for i, ch in enumerate(reversed(d)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(ch)]]
    return c == 0


def _cpf(value: str) -> bool:
    d = only_digits(value)
    if len(d) != 11 or len(set(d)) == 1:
        return False
    for n in (9, 10):
        total = sum(int(d[i]) * (n + 1 - i) for i in range(n))
        if (total * 10 % 11) % 10 != int(d[n]):
            return False
    return True


def _sin(value: str) -> bool:
    d = only_digits(value)
    return len(d) == 9 and d[0] not in "08" and luhn_ok(d)


def _tfn(value: str) -> bool:
    d = only_digits(value)
    weights = (1, 4, 3, 7, 5, 8, 6, 9, 10) if len(d) == 9 else (10, 7, 8, 4, 6, 3, 5, 1)
    return len(d) in (8, 9) and _weighted(d, weights, 11) == 0


def _pesel(value: str) -> bool:
    d = only_digits(value)
    if len(d) != 11:
        return False
    check = (10 - _weighted(d, (1, 3, 7, 9, 1, 3, 7, 9, 1, 3), 10)) % 10
    return check == int(d[10])


def _se(value: str) -> bool:
    d = only_digits(value)[-10:]
    if len(d) != 10:
        return False
    month, day = int(d[2:4]), int(d[4:6]) % 60  # day + 60 marks a coordination number
    return 1 <= month <= 12 and 1 <= day <= 31 and luhn_ok(d)


def _cn(value: str) -> bool:
    v = value.upper()
    if not _date_ok(int(v[6:10]), int(v[10:12]), int(v[12:14])):
        return False
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[_weighted(v[:17], weights, 11)] == v[17]


def _sg(value: str) -> bool:
    v = value.upper()
    total = sum(int(c) * w for c, w in zip(v[1:8], (2, 7, 6, 5, 4, 3, 2), strict=True))
    if v[0] in "TG":
        total += 4
    elif v[0] == "M":
        total += 3
    table = "JZIHGFEDCBA" if v[0] in "ST" else ("KTJRLNMUXWQ" if v[0] == "M" else "XWUTRQPNMLK")
    return table[total % 11] == v[8]


def _kr(value: str) -> bool:
    d = only_digits(value)
    if len(d) != 13 or not (1 <= int(d[2:4]) <= 12 and 1 <= int(d[4:6]) <= 31):
        return False
    total = _weighted(d, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5), 11)
    return (11 - total) % 10 == int(d[12])


def _nino(value: str) -> bool:
    v = value.replace(" ", "").upper()
    return v[:2] not in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}


def _always(value: str) -> bool:
    return True


_B: Final = r"(?<![\w-])"
_E: Final = r"(?![\w-])"

ID_SPECS: Final[tuple[IdSpec, ...]] = (
    IdSpec(
        "national_id_uk", _B + r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]" + _E, _nino
    ),
    IdSpec("national_id_uk", _B + r"\d{3}[ -]?\d{3}[ -]?\d{4}" + _E, _nhs, ("nhs",)),
    IdSpec("national_id_es", _B + r"(?:\d{8}|[XYZ]\d{7})-?[A-Z]" + _E, _es),
    IdSpec("national_id_it", _B + r"[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z]" + _E, _it),
    IdSpec(
        "national_id_fr",
        _B + r"[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}" + _E,
        _fr,
    ),
    IdSpec(
        "national_id_de",
        _B + r"[1-9]\d{10}" + _E,
        _de,
        ("steuer", "tax", "idnr", "identifikationsnummer", "tin"),
    ),
    IdSpec("national_id_nl", _B + r"\d{9}" + _E, _nl, ("bsn", "burgerservice", "sofi")),
    IdSpec("national_id_in", _B + r"[2-9]\d{3} \d{4} \d{4}" + _E, _aadhaar),
    IdSpec("national_id_in", _B + r"[2-9]\d{11}" + _E, _aadhaar, ("aadhaar", "aadhar", "uidai")),
    IdSpec("national_id_in", _B + r"[A-Z]{3}[ABCFGHLJPT][A-Z]\d{4}[A-Z]" + _E, _always, ("pan",)),
    IdSpec("national_id_br", _B + r"\d{3}\.\d{3}\.\d{3}-\d{2}" + _E, _cpf),
    IdSpec("national_id_br", _B + r"\d{11}" + _E, _cpf, ("cpf",)),
    IdSpec("national_id_ca", _B + r"\d{3}[ -]\d{3}[ -]\d{3}" + _E, _sin, ("sin", "social insurance")),
    IdSpec("national_id_au", _B + r"\d{3} ?\d{3} ?\d{2,3}" + _E, _tfn, ("tfn", "tax file")),
    IdSpec("national_id_pl", _B + r"\d{11}" + _E, _pesel, ("pesel",)),
    IdSpec("national_id_se", _B + r"(?:19|20)?\d{6}[-+]\d{4}" + _E, _se),
    IdSpec(
        "national_id_cn",
        _B + r"[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]" + _E,
        _cn,
    ),
    IdSpec("national_id_sg", _B + r"[STFGM]\d{7}[A-Z]" + _E, _sg),
    IdSpec("national_id_kr", _B + r"\d{6}-[1-4]\d{6}" + _E, _kr),
)
"""Every national ID format; each spec becomes one rule of the PII detector."""

_GROUP_BEFORE: Final = re.compile(r"\d[ -]$")
_GROUP_AFTER: Final = re.compile(r"[ -]\d")
_CONTEXT_CHARS: Final = 48
"""How far before a number its context word may be."""


def id_confidence(spec: IdSpec, text: str, start: int, end: int, value: str) -> float | None:
    """Confidence that `value` at `start:end` is this national ID, or `None`."""
    if _GROUP_BEFORE.search(text[max(0, start - 2) : start]) or _GROUP_AFTER.match(text[end : end + 2]):
        return None  # a piece of a longer grouped number (a card, an account), not an ID of its own
    if not spec.check(value):
        return None
    if spec.context:
        around = window(text, start, end, before=_CONTEXT_CHARS)
        if not any(re.search(rf"\b{re.escape(word)}", around) for word in spec.context):
            return None
        return 0.85
    return 0.8
