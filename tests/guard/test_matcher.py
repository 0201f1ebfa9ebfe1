"""The Hyperscan matcher: databases compiled by a child Python find what an in-process compile finds."""

from __future__ import annotations

import re
import sys
import uuid
from typing import Any

import pytest

from bastion.guard import backends, matcher
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
    assert isinstance(backend, backends.HyperscanBackend)
    in_process = backend._build(
        [(i, backends.rule_source(r).encode(), flags) for i, r, flags in _entries(rules)]
    )
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
        if backends.LOOKAROUND.search(rule.pattern):
            flags |= hyperscan.HS_FLAG_PREFILTER
        out.append((i, rule, flags))
    return out


def test_a_matcher_in_parts_reports_what_one_database_reports() -> None:
    rules = [*unique_rules(), *unique_rules()]
    rules.append(rules[0])  # a twin across the parts: compiled once, reported for both
    tag_a, tag_b = rules[0].pattern[8:16], rules[3].pattern[8:16]
    texts = [
        f"x NEEDLE{tag_a} y\nstart{tag_b} and {tag_b}-1234",
        f"é NEEDLE{tag_b} ü {tag_a}-4321 ✓",  # not ASCII: the wide databases
        "nothing here",
    ]
    whole = MultiMatcher(rules, backend="hyperscan")
    split = MultiMatcher(rules, backend="hyperscan", parts=(2, 4))
    for text in texts:
        assert split.matching(text) == whole.matching(text)
    assert split.matching(texts[0]) == [0, 4, 5, 6]


def test_matchers_with_rules_in_common_hold_one_copy_of_their_databases() -> None:
    common, mine, theirs = unique_rules(), unique_rules(), unique_rules()[:1]
    first = MultiMatcher([*common, *mine], backend="hyperscan", parts=(len(common),))
    second = MultiMatcher([*common, *theirs], backend="hyperscan", parts=(len(common),))
    narrow: Any = (first._impl, second._impl)
    wide: Any = (first._sets.wide_impl, second._sets.wide_impl)
    assert narrow[0].parts[0] is narrow[1].parts[0]
    assert wide[0].parts[0] is wide[1].parts[0]
    tag = theirs[0].pattern[8:16]
    assert second.matching(f"NEEDLE{tag}") == [3]  # its own index, from its own part
    assert first.matching(f"NEEDLE{tag}") == []


def built(programs: Any) -> set[int]:
    return {i for i, program in enumerate(programs._built) if program is not matcher._UNSET}


def test_stage_two_programs_are_built_only_for_the_rules_stage_one_reports() -> None:
    rules = unique_rules()
    tag = rules[0].pattern[8:16]
    found = MultiMatcher(rules, backend="hyperscan")
    sets: Any = found._sets
    assert built(sets.regexes) == built(sets.finders) == built(sets.wide_finders) == set()
    hits = found.search_all(f"a NEEDLE{tag} here")
    assert [(i, m.group()) for i, m in hits] == [(0, f"NEEDLE{tag}")]
    assert built(sets.regexes) == built(sets.finders) == {0}
    assert built(sets.wide_finders) == set()  # an ASCII text never needs the view's finder
    hits = found.search_all(f"é {tag}-1234 ü")
    assert [(i, m.group()) for i, m in hits] == [(1, f"{tag}-1234")]
    assert built(sets.regexes) == {0, 1} and built(sets.wide_finders) == {1}
    # Built once: the same program serves the next text.
    finder = sets.finders[0]
    found.search_all(f"NEEDLE{tag} again")
    assert sets.finders[0] is finder
