"""The Hyperscan matcher: databases compiled by a child Python find what an in-process compile finds."""

from __future__ import annotations

import re
import sys
import uuid

import pytest

from bastion.guard import matcher
from bastion.guard.detector import Rule
from bastion.guard.matcher import MultiMatcher

hyperscan = pytest.importorskip("hyperscan")


def unique_rules() -> list[Rule]:
    """Rules no other test compiled (the compiled-set cache would otherwise hand back an earlier build)."""
    tag = uuid.uuid4().hex[:8]
    return [
        Rule(type="word", pattern=rf"\bneedle{tag}\b", flags=re.IGNORECASE),
        Rule(type="digits", pattern=rf"{tag}-\d{{4}}(?!\d)"),
        Rule(type="line", pattern=rf"^start{tag}", flags=re.MULTILINE),
    ]


def test_a_child_compiled_database_reports_the_same_rules_as_an_in_process_one() -> None:
    rules = unique_rules()
    tag = rules[0].pattern[8:16]
    text = f"x NEEDLE{tag} y\nstart{tag} and {tag}-1234 but not {tag}-12345"
    child = MultiMatcher(rules, backend="hyperscan")
    backend = child._impl
    assert isinstance(backend, matcher._HyperscanBackend)
    in_process = backend._build([(i, matcher._source(r).encode(), flags) for i, r, flags in _entries(rules)])
    found: set[int] = set()
    in_process.scan(
        text.encode(),
        match_event_handler=lambda rule_id, *_: found.add(rule_id),
        scratch=hyperscan.Scratch(in_process),
    )
    assert child.matching(text) == sorted(found) == [0, 1, 2]
    assert [m.group() for m in child.finditer(1, text)] == [f"{tag}-1234"]


def test_a_rule_the_compiler_refuses_is_retried_and_still_reported() -> None:
    tag = uuid.uuid4().hex[:8]
    # A back-reference is refused in a normal database, so the set is rebuilt with this rule in prefilter mode.
    refused = Rule(type="repeat", pattern=rf"({tag})\1", prefilter=rf"({tag})\1")
    plain = Rule(type="plain", pattern=rf"plain{tag}")
    found = MultiMatcher([refused, plain], backend="hyperscan")
    assert found.matching(f"{tag}{tag} plain{tag}") == [0, 1]
    assert [m.group() for m in found.finditer(0, f"x {tag}{tag} y")] == [f"{tag}{tag}"]


def test_without_a_child_python_the_database_is_compiled_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "")
    rules = unique_rules()
    tag = rules[0].pattern[8:16]
    assert MultiMatcher(rules, backend="hyperscan").matching(f"needle{tag}") == [0]


def _entries(rules: list[Rule]) -> list[tuple[int, Rule, int]]:
    out = []
    for i, rule in enumerate(rules):
        flags = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY
        if rule.flags & re.IGNORECASE:
            flags |= hyperscan.HS_FLAG_CASELESS
        if rule.flags & re.MULTILINE:
            flags |= hyperscan.HS_FLAG_MULTILINE
        if matcher._LOOKAROUND.search(rule.pattern):
            flags |= hyperscan.HS_FLAG_PREFILTER
        out.append((i, rule, flags))
    return out
