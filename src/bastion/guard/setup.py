"""`compiled_guard`: one compiled `Guard` per guardrails config and process (compiling the patterns is the slow part).

The gateway's guardrails (stage, tool screen, pins, channel guard) are assembled by the composition root
(`bastion.app.guardrails`); `bastion scan` and `bastion policy` reuse the compiled guard from here.
"""

from __future__ import annotations

from typing import Final

from bastion.guard.config import GuardrailsConfig
from bastion.guard.engine import Guard

_COMPILED_KEEP: Final = 4
"""Compiled guards kept per process, keyed by their config (compiling the patterns is the slow part)."""
_compiled: dict[str, Guard] = {}


def compiled_guard(config: GuardrailsConfig) -> Guard:
    """`Guard(config)`, reused when this process already compiled the same config (a `Guard` is immutable)."""
    key = config.model_dump_json()
    guard = _compiled.get(key)
    if guard is None:
        guard = Guard(config)
        if len(_compiled) >= _COMPILED_KEEP:
            _compiled.pop(next(iter(_compiled)))
        _compiled[key] = guard
    return guard
