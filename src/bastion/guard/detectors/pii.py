"""The `pii` detector: e-mail addresses, phone numbers, payment cards, IBANs, US SSNs, IP addresses, national IDs and
(optionally) street addresses. Validators, not bare regexes: every candidate span is checked before it counts.

What it does not find: names, organisations, places, dates and ages. Those need a language model; a regex that
"finds names" mostly finds capitalised words.

Why the checks:
- Cards: Luhn, plus a known issuer prefix or the word "card" nearby (a random 16-digit id passes Luhn 1 time in 10).
- Phones: the `phonenumbers` library decides; a bare digit run needs a context word ("phone", "fax", "call").
- IBAN: the country's length and the mod-97 check. SSN: the ranges the SSA never issues are refused.
- IPs: loopback, unspecified and netmask-looking addresses are not personal data; version strings are skipped.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from typing import Final

import phonenumbers

from bastion.guard.config import PiiConfig
from bastion.guard.detector import Hit, Rule, ScanContext
from bastion.guard.detectors.pii_ids import ID_SPECS, IdSpec, id_confidence
from bastion.guard.detectors.standalone import StandaloneScan
from bastion.guard.detectors.textutil import luhn_ok, only_digits, window
from bastion.guard.finding import Finding, Severity

IBAN_LENGTHS: Final = {
    **dict.fromkeys(["NO"], 15),
    **dict.fromkeys(["BE"], 16),
    **dict.fromkeys(["DK", "FI", "FO", "GL", "NL", "SD"], 18),
    **dict.fromkeys(["MK", "SI"], 19),
    **dict.fromkeys(["AT", "BA", "EE", "KZ", "LT", "LU", "XK"], 20),
    **dict.fromkeys(["CH", "HR", "LI", "LV"], 21),
    **dict.fromkeys(["BG", "BH", "CR", "DE", "GB", "GE", "IE", "ME", "RS", "VA"], 22),
    **dict.fromkeys(["AE", "GI", "IL", "IQ", "TL"], 23),
    **dict.fromkeys(["AD", "CZ", "ES", "MD", "PK", "RO", "SA", "SE", "SK", "TN", "VG"], 24),
    **dict.fromkeys(["LY", "PT", "ST"], 25),
    **dict.fromkeys(["IS", "TR"], 26),
    **dict.fromkeys(["FR", "GR", "IT", "MC", "MR", "SM"], 27),
    **dict.fromkeys(["AL", "AZ", "BY", "CY", "DO", "GT", "HU", "LB", "PL", "SV"], 28),
    **dict.fromkeys(["BR", "EG", "PS", "QA", "UA"], 29),
    **dict.fromkeys(["JO", "KW", "MU"], 30),
    **dict.fromkeys(["MT", "SC"], 31),
    **dict.fromkeys(["LC"], 32),
}
"""IBAN length per country (SWIFT IBAN registry)."""

_CARD_CONTEXT: Final = re.compile(
    r"\b(?:card|cc|visa|master ?card|amex|american express|discover|debit|credit|pan|payment)"
)
_PHONE_CONTEXT: Final = re.compile(
    r"\b(?:phone|tel|telephone|mobile|mob|cell|fax|call|contact|sms|whatsapp|office|desk|ph|dial|landline|text|messages?"
    r"|answering|voicemail|ring)\b"
)
_SSN_CONTEXT: Final = re.compile(r"\b(?:ssn|social security|ss#|ss #|taxpayer)")
_NOT_PHONE: Final = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d+\.\d+|\d{1,3}(?:\.\d{1,3}){3}|\d+(?:/\d+)+"
)
_NOT_PHONE_LABEL: Final = re.compile(
    r"\b(?:order|tracking|track|shipment|parcel|package|consignment|invoice|receipt|confirmation|reference|ref|booking"
    r"|reservation|ticket|case|claim|policy|account|acct|serial|sku|part|model|licen[cs]e|driver'?s?|dl|permit|passport"
    r"|member(?:ship)?|customer|employee|student|patient|vin|waybill|awb|transaction|txn|po)\b"
    # The label may be followed by the id's own leading letters and digits ("tracking number 1Z 999 AA1 01 ...").
    r"(?:[^\n\d]{0,16}|[^\n.;!?]{0,28}?[A-Za-z]\d|[^\n.;!?]{0,28}?\d[A-Za-z])[^\n.;!?]{0,24}$"
)
"""A label right before a digit run that names it as some other number (order, tracking, licence...)."""
_VERSION_CONTEXT: Final = re.compile(r"(?:version|release|\bv|build|@|==|>=|<=|~=)\s*[:=]?\s*$")
_FILE_TLDS: Final = frozenset(
    "png jpg jpeg gif svg webp ico css js ts tsx jsx py rb go rs java json yaml yml xml md txt html htm lock map".split()
)


_DIGIT_GROUP_BEFORE: Final = re.compile(r"\d[ -]$")

_SPACES: Final = "\u00a0\u2007\u202f"
"""No-break, figure and narrow no-break spaces: how French and typeset text group digits, and what a number pasted
from a web page often carries. Grouped with them, a card number is the same card number (it was not found)."""
_HYPHENS: Final = "\u2010\u2011"
"""Hyphen and non-breaking hyphen."""
_AS_ASCII: Final = str.maketrans({**dict.fromkeys(_SPACES, " "), **dict.fromkeys(_HYPHENS, "-")})
_SP: Final = f"[ {_SPACES}]"
"""A space between digit groups, in patterns (literal characters, not escapes: Hyperscan reads the pattern as bytes)."""
_SEP: Final = f"[ {_SPACES}{_HYPHENS}-]"
"""A space or a hyphen between digit groups."""


def _plain(raw: str) -> str:
    """`raw` with its digit-group separators as the ASCII ones the validators read (same length)."""
    return raw.translate(_AS_ASCII)


def _card_ok(text: str, m: re.Match[str]) -> float | None:
    raw = _plain(m.group(0))
    if _DIGIT_GROUP_BEFORE.search(_plain(text[max(0, m.start() - 2) : m.start()])):
        return None  # the tail of a longer grouped number, not a number of its own
    digits = only_digits(raw)
    if not 12 <= len(digits) <= 19 or not luhn_ok(digits) or len(set(digits)) <= 2:
        return None
    groups = [len(g) for g in re.split(r"[ -]", raw)]
    if len(groups) > 1 and groups not in ([4, 6, 5], [4, 6, 4]) and any(g != 4 for g in groups[:-1]):
        return None
    context = _CARD_CONTEXT.search(window(text, m.start(), m.end(), before=48)) is not None
    issuer = _known_issuer(digits)
    if context:
        return 0.95 if issuer else 0.8
    if issuer and (len(groups) > 1 or len(digits) in (15, 16)):
        return 0.7
    return None


def _known_issuer(d: str) -> bool:
    two, four = int(d[:2]), int(d[:4])
    return (
        d[0] == "4"
        or 51 <= two <= 55
        or 2221 <= four <= 2720
        or two in (34, 37, 36, 38, 50, 62, 65)
        or 300 <= int(d[:3]) <= 305
        or 3528 <= four <= 3589
        or d[:4] in ("6011", "2131", "1800")
        or 644 <= int(d[:3]) <= 649
        or 56 <= two <= 69
    )


def _iban_ok(text: str, m: re.Match[str]) -> tuple[float, int] | None:
    raw = _plain(m.group(0))
    if raw != raw.upper():
        if raw != raw.lower():
            return None  # mixed case is a word or an identifier; an IBAN is written in one case
        raw = raw.upper()
    expected = IBAN_LENGTHS.get(raw[:2])
    if expected is None:
        return None
    taken = 0
    end = 0
    for i, ch in enumerate(raw):
        if ch != " ":
            taken += 1
        if taken == expected:
            end = i + 1
            break
    if taken != expected or (end < len(raw) and raw[end] != " "):
        return None
    compact = raw[:end].replace(" ", "")
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return (0.95, m.start() + end) if int(number) % 97 == 1 else None


def _ssn_ok(text: str, m: re.Match[str]) -> float | None:
    d = only_digits(m.group(0))
    area, group, serial = int(d[:3]), int(d[3:5]), int(d[5:])
    if (
        area in (0, 666)
        or area >= 900
        or group == 0
        or serial == 0
        or d in ("123456789", "078051120", "219099999")
    ):
        return None
    context = _SSN_CONTEXT.search(window(text, m.start(), m.end(), before=48)) is not None
    if m.group(0).isdigit() and not context:
        return None
    return 0.9 if context else 0.65


def _ip_ok(text: str, m: re.Match[str]) -> float | None:
    raw = m.group(0)
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return None
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        return None
    if address.is_link_local or (address.version == 4 and address.is_reserved):
        return None  # 169.254.169.254 (cloud metadata) and fe80:: name machines and services, never a person
    if address.version == 4:
        if raw.startswith("255.") or (raw.endswith(".0") and raw.count(".0") >= 2):
            return None  # netmasks and network addresses
        if _VERSION_CONTEXT.search(text[max(0, m.start() - 12) : m.start()].lower()):
            return None
        return 0.8
    if raw.count(":") < 4 and not re.search(r"[0-9a-fA-F]{4}", raw):
        return None
    return 0.8


def _email_ok(text: str, m: re.Match[str]) -> float | None:
    domain = m.group("domain").lower()
    tld = domain.rsplit(".", 1)[-1]
    if tld in _FILE_TLDS or m.group(0).startswith(".") or ".." in m.group(0):
        return None
    return 0.95


def _phone_ok(regions: Sequence[str]) -> Callable[[str, re.Match[str]], float | None]:
    def check(text: str, m: re.Match[str]) -> float | None:
        raw = _plain(m.group(0))
        number_part = re.split(r"\s?(?:x|ext\.?)\s?\d", raw, maxsplit=1)[0]
        digits = only_digits(number_part)
        if not 7 <= len(digits) <= 15 or _NOT_PHONE.fullmatch(number_part):
            return None
        international = raw.startswith(("+", "00"))
        formatted = any(c in number_part for c in " ().-")
        around = window(text, m.start(), m.end(), before=40, after=12)
        context = _PHONE_CONTEXT.search(around) is not None
        label = window(text, m.start(), m.start(), before=32)
        if not international and _NOT_PHONE_LABEL.search(label) and not _PHONE_CONTEXT.search(label):
            return None  # "order no. 4402 1187 22", "tracking 1Z..." and licence numbers are not phones
        if not (international or formatted or context):
            return None
        if not (international or context) and len(digits) < 10:
            return None  # short digit groups are house numbers, ids and codes unless something says "phone"
        for region in (None,) if raw.startswith("+") else (*regions, None):
            try:
                number = phonenumbers.parse(number_part, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(number):
                return 0.9 if context else 0.75
            if context and phonenumbers.is_possible_number(number):
                return 0.6
        return 0.5 if context and formatted and len(digits) >= 7 else None

    return check


_AFTER_SEPARATOR: Final = r"(?:(?<![\w.+/:=-])|(?<=\\[ntr]))"
"""Start of a number: not inside a word or another number; a literal `\\n` (double-encoded JSON) counts as a gap."""

_ADDRESS_SUFFIX: Final = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Parkway|Pkwy"
    r"|Circle|Highway|Hwy|Square|Sq|Trail|Close|Crescent|Row|Stravenue)"
)

PII_RULES: Final[tuple[tuple[str, Rule], ...]] = (
    (
        "email",
        Rule(
            type="email",
            pattern=r"(?<![\w.%+-])[A-Za-z0-9][\w.%+-]{0,63}@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![\w-])",
            prefilter=r"[\w.%+-]@[A-Za-z0-9.-]*\.[A-Za-z]{2}",  # any label before the top-level domain ("x@mail.2020.io")
            severity=Severity.LOW,
        ),
    ),
    (
        "email",
        Rule(
            # Written to dodge scrapers: "jane [at] example [dot] org", "jane(at)example(dot)org".
            type="email",
            pattern=r"(?<![\w.%+-])[A-Za-z0-9][\w.%+-]{0,63}\s*(?:\[at\]|\(at\)|\{at\}|<at>|\s+at\s+)\s*[A-Za-z0-9-]{1,63}"
            r"(?:\s*(?:\[dot\]|\(dot\)|\{dot\}|<dot>|\s+dot\s+)\s*[A-Za-z0-9-]{1,63}){0,3}"
            r"\s*(?:\[dot\]|\(dot\)|\{dot\}|<dot>|\s+dot\s+)\s*[A-Za-z]{2,24}\b",
            prefilter=r"(?i)[\[({<\s]dot[\])}>\s]",
            flags=re.IGNORECASE,
            severity=Severity.LOW,
        ),
    ),
    (
        "phone_number",
        Rule(
            type="phone_number",
            pattern=_AFTER_SEPARATOR
            + rf"(?:\+|00)?\(?\d[\d ().{_SPACES}{_HYPHENS}\-]{{5,22}}\d(?:\s?(?:x|ext\.?)\s?\d{{1,5}})?(?![\w/:]|-\d)",
            prefilter=rf"\d[\d ().{_SPACES}{_HYPHENS}\-]{{5,22}}\d",
            severity=Severity.LOW,
        ),
    ),
    (
        "credit_card",
        Rule(
            type="credit_card",
            pattern=rf"(?<![\w-])\d(?:{_SEP}?\d){{11,18}}(?![\w-])",
            prefilter=rf"\d(?:{_SEP}?\d){{11,18}}",
            severity=Severity.HIGH,
        ),
    ),
    (
        "iban",
        Rule(
            type="iban",
            pattern=rf"\b[A-Z]{{2}}\d{{2}}(?:{_SP}?[A-Z0-9]{{4}}){{2,7}}(?:{_SP}?[A-Z0-9]{{1,3}})?\b",
            flags=re.IGNORECASE,
            severity=Severity.HIGH,
        ),
    ),
    (
        "us_ssn",
        Rule(
            type="us_ssn",
            pattern=rf"(?<![\w-])(?:\d{{3}}[-{_HYPHENS}]\d{{2}}[-{_HYPHENS}]\d{{4}}|\d{{3}}{_SP}\d{{2}}{_SP}\d{{4}}|\d{{9}})(?![\w-])",
            severity=Severity.HIGH,
        ),
    ),
    (
        "ip_address",
        Rule(
            type="ip_address",
            pattern=r"(?<![\w.])(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}(?!\w|\.\d)",
            prefilter=r"\d\.\d{1,3}\.\d{1,3}\.\d",
            severity=Severity.LOW,
        ),
    ),
    (
        "ip_address",
        Rule(
            type="ip_address",
            # Two groups at least ("::" or a second colon): a single colon is a time or a port, never an address.
            pattern=r"(?<![\w:])(?:(?:[0-9a-fA-F]{1,4}:){1,7}:(?:[0-9a-fA-F]{1,4}(?::[0-9a-fA-F]{1,4}){0,5})?"
            r"|(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4})(?![\w:])",
            prefilter=r"[0-9a-fA-F]:(?::|[0-9a-fA-F]{1,4}:)",  # what every match starts with
            severity=Severity.LOW,
        ),
    ),
    (
        "postal_address",
        Rule(
            type="postal_address",
            pattern=r"\b\d{1,6}[A-Z]?(?: [A-Z][\w'.-]*){1,4} " + _ADDRESS_SUFFIX + r"\b\.?",
            prefilter=r"\d[A-Z]? (?:[A-Z]\S* ){1,4}" + _ADDRESS_SUFFIX,  # "221B Baker Street"
            severity=Severity.MEDIUM,
        ),
    ),
    (
        "postal_address",
        Rule(
            type="postal_address",
            pattern=r"\b(?:Apt|Apartment|Suite|Ste|Unit|Flat|PSC|Box)\.? ?#?\d{1,5}[A-Z]?\b|\b[AF]PO A[AEP] \d{5}\b",
            severity=Severity.LOW,
        ),
    ),
    (
        "postal_address",
        Rule(
            type="postal_address",
            pattern=r"\b[A-ZÄÖÜ][a-zäöüß]+(?:strasse|straße|gasse|weg|platz|allee|vej|gade|veien|vägen|gatan|katu|tie|utca)"
            r" \d{1,4}[a-z]?\b|\b(?:rue|avenue|chemin|via|viale|piazza|calle|avenida|rua|ul\.) (?:[\w'.-]+ ){0,4}?\d{1,4}\b",
            prefilter=r"(?i)(?:strasse|straße|gasse|weg|platz|allee|vej|gade|veien|vägen|gatan|katu|tie|utca|rue|avenue"
            r"|chemin|via|viale|piazza|calle|avenida|rua|ul\.) (?:\S+ ){0,4}\d",  # "Avenida Marquês Tomar 103"
            flags=re.IGNORECASE,
            severity=Severity.LOW,
        ),
    ),
)
"""(family, rule) for everything but national IDs."""


class PiiDetector(StandaloneScan):
    """Personal data a regex plus a validator can prove."""

    name = "pii"

    def __init__(self, config: PiiConfig | None = None) -> None:
        self.config = config if config is not None else PiiConfig()
        enabled = set(self.config.types)
        phone = _phone_ok(tuple(self.config.phone_regions))
        checks: dict[str, Callable[[str, re.Match[str]], float | None]] = {
            "email": _email_ok,
            "email_spelled": lambda text, m: 0.8,
            "phone_number": phone,
            "credit_card": _card_ok,
            "us_ssn": _ssn_ok,
            "ip_address": _ip_ok,
            "postal_address": lambda text, m: 0.6,
        }
        rules: list[Rule] = []
        self._validators: list[Callable[[str, re.Match[str]], float | None] | IdSpec | None] = []
        for family, rule in PII_RULES:
            if family in enabled:
                rules.append(rule)
                spelled = family == "email" and "domain" not in rule.pattern
                self._validators.append(
                    checks.get("email_spelled" if spelled else family)
                )  # `iban` is special-cased: it trims its span
        if "national_id" in enabled:
            for spec in ID_SPECS:
                rules.append(Rule(type=spec.type, pattern=spec.pattern, severity=Severity.HIGH))
                self._validators.append(spec)
        self.rules: tuple[Rule, ...] = tuple(rules)

    def confirm(self, text: str, hits: Sequence[Hit], context: ScanContext) -> list[Finding]:
        """Validate candidates; a span claimed by a stronger type (card over phone, IBAN over ID) wins."""
        found: list[Finding] = []
        for hit in hits:
            rule = self.rules[hit.rule]
            m = hit.match
            start, end = m.span()
            validator = self._validators[hit.rule]
            confidence: float | None
            if rule.type == "iban":
                checked = _iban_ok(text, m)
                confidence, end = (checked[0], checked[1]) if checked else (None, end)
            elif isinstance(validator, IdSpec):
                confidence = id_confidence(validator, text, start, end, m.group(0))
            else:
                confidence = validator(text, m) if validator is not None else 0.5
            if confidence is None:
                continue
            found.append(
                Finding(
                    detector=self.name,
                    type=rule.type,
                    severity=rule.severity,
                    confidence=confidence,
                    path=context.path,
                    start=start,
                    end=end,
                )
            )
        return _dedupe(found) if len(found) > 1 else found


_PRIORITY: Final = {"credit_card": 5, "iban": 5, "us_ssn": 4, "email": 4, "ip_address": 3, "phone_number": 1}


def _dedupe(findings: list[Finding]) -> list[Finding]:
    ordered = sorted(findings, key=lambda f: (-_PRIORITY.get(f.type, 2), -(f.end - f.start), f.start))
    kept: list[Finding] = []
    for f in ordered:
        if any(f.start < k.end and k.start < f.end for k in kept):
            continue
        kept.append(f)
    return sorted(kept, key=lambda f: f.start)
