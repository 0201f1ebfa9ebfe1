"""The `secrets` detector: provider credential formats, private keys, JWTs, credentials in URLs and headers, and
generic `password=`/`api_key:` assignments of high-entropy values.

Why each check exists (false positives are what make people switch a guard off):
- Provider formats (`secret_rules.py`) stand alone, but documentation is full of `ghp_xxxx...` and `AKIA...EXAMPLE`:
  placeholders and low-entropy tails are dropped.
- The generic assignment rule only trusts the *last word* of the key (`githubToken`, `DB_PASSWORD`, `api_key`),
  so `token_type`, `credentialsId` or `key_length` are not secrets; and the value must look random (entropy, mixed
  character classes), not like an identifier, a variable reference or a template.
- Overlapping findings collapse to the most specific one, so a redaction happens once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Final

from bastion.guard.config import SecretsConfig
from bastion.guard.detector import Hit, Rule, ScanContext
from bastion.guard.detectors.secret_rules import HAS_SECRET_GROUP, PROVIDER_RULES
from bastion.guard.detectors.standalone import StandaloneScan
from bastion.guard.detectors.textutil import char_classes, looks_placeholder, shannon_entropy
from bastion.guard.finding import Finding, Severity

_KEYWORD: Final = (
    r"(?:(?:api|access|secret|private|auth|client|signing|encryption|master|license|admin|account|service"
    r"|session|consumer|webhook|app|ssh|deploy|integration|subscription)[_.-]?key|apikey|token|secret"
    r"|passw(?:or)?d|passwd|pwd|passphrase|passcode|credentials?|creds)"
)

GENERIC_RULE: Final = Rule(
    type="generic_secret",
    pattern=(
        r"(?P<kw>"
        + _KEYWORD
        + r")\b[\"'`\]]{0,2}[ \t]{0,4}(?:(?:string|str|String)[ \t]{1,4}|:[ \t]*str(?:ing)?[ \t]*)?"
        r"(?P<op>:=|\?=|\|\|=|=>|==?|:|,)[ \t]{0,4}[\"'`]?[ \t]{0,2}(?P<s>[^\s\"'`;,(){}\[\]<>]{4,300})"
    ),
    flags=re.IGNORECASE,
    severity=Severity.MEDIUM,
)
"""`<key ending in a secret word> <assignment> <value>`, in code, config, env files, JSON and YAML."""

_PASSWORD_WORDS: Final = ("passw", "pwd", "passphrase", "passcode")
_KEY_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_NOT_SECRET_KEY: Final = re.compile(r"(?i)public|publishable|csrf|xsrf|captcha|nonce|(?<![a-z])pub[_.-]")
_CODE_VALUE: Final = re.compile(
    r"^(?:[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+|(?:self|this|os|env|process|config|settings|request|req|args"
    r"|params|options|opts|props|ctx|context|System|Environment)\b.*|[a-z]+(?:[_-][a-z]+)*|[A-Z][A-Z]+(?:_[A-Z0-9]+)*"
    r"|(?:[A-Z]?[a-z]+)+|(?:true|false|null|none|nil|undefined|required|optional|string|bytes|str|int))$"
)
"""Values that are code (attribute chains, identifiers, constants, types), not credentials."""
_RANDOM_SEGMENT: Final = re.compile(
    r"(?=[A-Za-z0-9_-]{16})(?=[^.]*[a-z])(?=[^.]*[A-Z])(?=[^.]*\d)[A-Za-z0-9_-]{16,}"
)
"""A dotted value with one long mixed-case, digit-bearing segment is a token (`ya29.<random>`), not `self.attr`."""
_WEAK_PASSWORDS: Final = frozenset(
    {"password", "passwd", "secret", "changeme", "admin", "root", "test", "testing", "pass", "pwd", "xxx"}
)
_RANK: Final = {"generic_secret": 0, "password": 0, "authorization_header": 1, "basic_auth_credentials": 1}
_STRUCTURAL: Final = frozenset({"jwt", "private_key", "connection_string", "putty_private_key"})


def _rank(type_: str) -> int:
    if type_ in _RANK:
        return _RANK[type_]
    return 2 if type_ in _STRUCTURAL else 3


def _key_before(text: str, index: int) -> str:
    """The identifier that ends at `index` (e.g. `GITHUB_API_TOKEN`), scanning back at most 80 characters."""
    start = index
    while start > 0 and index - start < 80 and text[start - 1] in _KEY_CHARS:
        start -= 1
    return text[start:index]


def _word_start(text: str, index: int) -> bool:
    """Whether a keyword at `index` starts a word of an identifier: after a separator or at a camelCase hump."""
    if index == 0:
        return True
    before, first = text[index - 1], text[index]
    if not before.isalnum():
        return True
    return before.isalpha() and first.isupper()


def _quoted_before(text: str, index: int) -> bool:
    return text[:index].rstrip()[-1:] in ('"', "'")


def _random_enough(value: str, *, min_entropy: float, min_length: int) -> bool:
    if len(value) < min_length:
        return False
    needed = min(min_entropy, 0.85 * math.log2(len(value)))
    if shannon_entropy(value) < needed:
        return False
    return char_classes(value) >= 2 or len(value) >= 24


class SecretsDetector(StandaloneScan):
    """Credentials of cloud and SaaS providers, keys, tokens and passwords."""

    name = "secrets"

    def __init__(self, config: SecretsConfig | None = None) -> None:
        self.config = config if config is not None else SecretsConfig()
        rules: list[Rule] = list(PROVIDER_RULES)
        self._secret_group: list[bool] = list(HAS_SECRET_GROUP)
        for custom in self.config.custom:
            rules.append(Rule(type=custom.type, pattern=custom.pattern, severity=custom.severity))
            self._secret_group.append(False)
        self._generic_index = -1
        if self.config.generic:
            self._generic_index = len(rules)
            rules.append(GENERIC_RULE)
            self._secret_group.append(True)
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._allow = tuple(re.compile(p) for p in self.config.allow)

    def confirm(self, text: str, hits: Sequence[Hit], context: ScanContext) -> list[Finding]:
        """Validate candidates and keep the most specific finding per span."""
        found: list[Finding] = []
        for hit in hits:
            finding = self._check(text, hit, context)
            if finding is not None:
                found.append(finding)
        return _dedupe(found) if len(found) > 1 else found

    def _check(self, text: str, hit: Hit, context: ScanContext) -> Finding | None:
        rule = self.rules[hit.rule]
        m = hit.match
        group = "s" if self._secret_group[hit.rule] else 0
        start = m.start(group)
        if start < 0:
            return None
        value = m.group(group)
        if any(a.search(value) for a in self._allow):
            return None
        type_, severity, confidence = rule.type, rule.severity, 0.95
        if hit.rule == self._generic_index:
            checked = self._generic(text, m)
            if checked is None:
                return None
            type_, confidence = checked
            value = m.group("s")
        elif not self._provider_ok(rule.type, m, value):
            return None
        return Finding(
            detector=self.name,
            type=type_,
            severity=severity,
            confidence=confidence,
            path=context.path,
            start=start,
            end=start + len(value),
        )

    def _provider_ok(self, type_: str, m: re.Match[str], value: str) -> bool:
        if type_ in ("private_key", "putty_private_key"):
            captured = m.groupdict().get("body")
            body = str(m.group(0) if captured is None else captured)
            return sum(ch.isalnum() or ch in "+/=" for ch in body) >= 40
        if looks_placeholder(value):
            return False
        if type_ == "connection_string":
            return (
                value.lower() not in _WEAK_PASSWORDS
                and value != m.group("user")
                and shannon_entropy(value) >= 1.5
            )
        if type_ in ("authorization_header", "basic_auth_credentials"):
            if type_ == "basic_auth_credentials" and (
                value == m.group("user") or value.lower() in _WEAK_PASSWORDS
            ):
                return False
            if _CODE_VALUE.match(value):
                return False
            return _random_enough(
                value, min_entropy=2.5, min_length=6 if type_ == "basic_auth_credentials" else 8
            )
        # The random tail of a token decides; prefixes like `GR1348941` or `AAAA...` are constant.
        tail = value[len(value) * 2 // 5 :]
        return shannon_entropy(tail) >= 2.5 or len(tail) < 8

    def _generic(self, text: str, m: re.Match[str]) -> tuple[str, float] | None:
        op = m.group("op")
        if op == "==":
            return None
        if op == "," and not (
            _quoted_before(text, m.start("op")) and text[m.end("op") :].lstrip()[:1] in "\"'"
        ):
            return None  # `f(token, x)` is code; only `("X_TOKEN", "value")` pairs count
        if not _word_start(text, m.start()):
            return None  # `jsonwebtoken`, `mytoken`: the keyword is not a word of the key
        keyword = m.group("kw").lower()
        key = _key_before(text, m.start()) + keyword
        if _NOT_SECRET_KEY.search(key):
            return None
        value = m.group("s")
        after = text[m.end("s") : m.end("s") + 1]
        if after in ("(", "[", "{", "<"):
            return None  # a call or an index expression, not a literal
        if looks_placeholder(value) or (_CODE_VALUE.match(value) and not _RANDOM_SEGMENT.search(value)):
            return None
        is_password = any(w in keyword for w in _PASSWORD_WORDS)
        if is_password:
            if value.lower() in _WEAK_PASSWORDS or not _random_enough(value, min_entropy=2.2, min_length=6):
                return None
            return "password", 0.7
        if value.isdigit():
            # Numeric client ids and PINs next to a secret word: only long, varied ones.
            return ("generic_secret", 0.6) if len(value) >= 16 and shannon_entropy(value) >= 2.8 else None
        if not _random_enough(value, min_entropy=self.config.min_entropy, min_length=8):
            return None
        return "generic_secret", 0.75


def _dedupe(findings: list[Finding]) -> list[Finding]:
    """Among overlapping findings keep the most specific kind, then the longest span."""
    ordered = sorted(findings, key=lambda f: (-_rank(f.type), -(f.end - f.start), f.start))
    kept: list[Finding] = []
    for f in ordered:
        if any(f.start < k.end and k.start < f.end for k in kept):
            continue
        kept.append(f)
    return sorted(kept, key=lambda f: f.start)
