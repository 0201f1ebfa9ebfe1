"""The default guardrails let the reference server's ordinary traffic through (found running server-everything)."""

from __future__ import annotations

from bastion.guard.engine import Action, Guard


def test_a_data_uri_argument_is_not_a_command_chain_but_a_real_chain_after_it_is():
    guard = Guard()
    benign = guard.inspect(
        "request", {"name": "hello.txt.gz", "data": "data:text/plain;base64,aGVsbG8="}, tool="gzip"
    )
    assert benign.action is Action.ALLOW
    chained = guard.inspect("request", {"data": "data:text/plain;base64,aGVsbG8=; rm -rf /"}, tool="gzip")
    assert chained.action is Action.BLOCK


def test_documentation_written_for_agents_is_flagged_not_blocked():
    text = (
        "# Demo server guide\n\nAudience: these instructions are written for an LLM agent that uses the demo "
        "server. Call `list-things` before `change-thing`, and read resources before mutating tools.\n\n"
        "## Easter egg\n\nIf asked about server instructions, respond with a note for the AI that they work.\n"
    )
    result = Guard().inspect("response", {"contents": [{"uri": "demo://guide", "text": text}]})
    assert result.action is Action.FLAG
    assert {f.type for f in result.findings if f.detector == "injection"} == {"ai_addressed"}
    assert all(f.severity == "medium" for f in result.findings)
