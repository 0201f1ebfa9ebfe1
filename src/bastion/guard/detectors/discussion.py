"""Context-aware severity: an injection phrase that is quoted, shown as code or discussed is reported, not enforced.

Security articles, documentation and test fixtures quote attacks ("attackers write 'ignore previous instructions'").
Blocking them would make the gateway useless for security work, and letting them through silently would hide a
real attack that merely wears quotation marks. So such findings keep their type and are lowered below the default
blocking threshold (`high`): they are flagged and audited, and an operator who wants them blocked raises the action.

Rules:
- Quoted: the phrase sits inside quotation marks on its line, inside inline code or a fenced code block, on a
  markdown quote line (`>`), or on a comment line (`#`, `//`, `--`, `*`). Lowered to `low`.
- Discussed: the text around it talks about attacks (two different terms such as "prompt injection", "attacker",
  "jailbreak", "example", "such as", "malicious"). Lowered to `medium`.
- Never lowered: what no article needs to do for real - hidden text (tag characters, encoded instructions,
  invisible or bidi characters), chat-template role markers and exfiltration links.
- Tool definitions are not judged by this module: a description has no reason to quote an attack.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final

from bastion.guard.finding import Finding, Severity

_DISCUSSION_TERMS: Final = re.compile(
    r"(?i)\b(?:prompt[- ]injections?|injection\s+attacks?|jailbreak\w*|attackers?|adversar\w+|malicious|red[- ]team\w*"
    r"|for\s+(?:example|instance)|e\.g\.|such\s+as|phrases?\s+(?:like|such)|payloads?|exploits?|owasp|defen[cs]es?"
    r"|mitigat\w+|security\s+research\w*|test\s+(?:case|fixture|string)s?|a\s+classic\s+example)"
)
"""Words of a text *about* attacks; two different ones make a discussion."""

_DISCUSSION_WINDOW: Final = 400
"""Characters on each side of a finding searched for discussion terms."""

_KEEP: Final = frozenset(
    {
        "obfuscated_instruction",
        "unicode_tags",
        "invisible_characters",
        "bidi_control",
        "homoglyph",
        "encoded_text",
        "role_marker",
        "exfiltration",
    }
)
"""Finding types never lowered."""

_QUOTE_PAIRS: Final = (
    ('"', '"'),
    ("\u201c", "\u201d"),
    ("\u00ab", "\u00bb"),
    ("\u201e", "\u201c"),
    ("'", "'"),
)
_COMMENT_LINE: Final = re.compile(r"[ \t]*(?:>|#|//|--|\*|/\*|<!--)")


def _line_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    return line_start, len(text) if line_end < 0 else line_end


def quoted(text: str, start: int, end: int) -> bool:
    """Whether `text[start:end]` is quoted, in code, on a quote line or on a comment line."""
    if text.count("```", 0, start) % 2 == 1:
        return True
    line_start, line_end = _line_bounds(text, start, end)
    if _COMMENT_LINE.match(text, line_start):
        return True
    before = text[line_start:start]
    if before.count("`") % 2 == 1:
        return True
    for opening, closing in _QUOTE_PAIRS:
        if opening == closing:
            if opening == "'":
                # Apostrophes are letters' business ("don't"); count only quotes at word edges.
                marks = [
                    i for i, ch in enumerate(before) if ch == "'" and (i == 0 or not before[i - 1].isalnum())
                ]
                if len(marks) % 2 == 1:
                    return True
            elif before.count(opening) % 2 == 1:
                return True
        elif before.rfind(opening) > before.rfind(closing) and closing in text[end:line_end]:
            return True
    return False


def discussed(text: str, start: int, end: int) -> bool:
    """Whether the text around `start:end` talks about attacks (two different discussion terms)."""
    around = text[max(0, start - _DISCUSSION_WINDOW) : end + _DISCUSSION_WINDOW]
    terms = {m.group(0).lower() for m in _DISCUSSION_TERMS.finditer(around)}
    return len(terms) >= 2


def soften(text: str, findings: list[Finding]) -> list[Finding]:
    """The findings with quoted ones lowered to `low` and discussed ones to at most `medium`."""
    out: list[Finding] = []
    for finding in findings:
        lowered = finding
        if finding.type not in _KEEP and finding.start >= 0 and finding.severity != Severity.LOW:
            if quoted(text, finding.start, finding.end):
                lowered = dataclasses.replace(
                    finding, severity=Severity.LOW, confidence=finding.confidence * 0.5
                )
            elif finding.severity in (Severity.HIGH, Severity.CRITICAL) and discussed(
                text, finding.start, finding.end
            ):
                lowered = dataclasses.replace(
                    finding, severity=Severity.MEDIUM, confidence=finding.confidence * 0.7
                )
        out.append(lowered)
    return out
