"""`Action` and the resolution of a finding to an action: detector or type key, direction, server, tool.

Rules:
- Scopes, most specific first: an override naming servers and tools, one naming only tools, one naming only
  servers, then the global `guardrails.actions` (which includes the defaults). Among overrides of the same
  specificity, the later one in the file wins.
- Within a scope, `detector.type` beats a glob `detector.type*` (longer glob first), which beats `detector`.
  A scope that says nothing for this direction defers to the next one.
- The strongest action wins across findings: block > ask > redact > flag > allow.
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from bastion.guard.config import ActionEntry, ActionSpec, GuardrailsConfig, OverrideConfig
from bastion.guard.detector import Direction
from bastion.guard.finding import Severity


class Action(enum.StrEnum):
    """The outcome for a finding or a whole payload."""

    ALLOW = "allow"
    FLAG = "flag"
    REDACT = "redact"
    ASK = "ask"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        """Order of strength: the strongest action among findings is the payload's action."""
        return _RANK[self]


_RANK: Final = {Action.ALLOW: 0, Action.FLAG: 1, Action.REDACT: 2, Action.ASK: 3, Action.BLOCK: 4}

_SEVERITY_ORDER: Final = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}

OFF: Final = None
"""A resolved "off": the finding is dropped."""

_CACHE_LIMIT: Final = 4096
"""Resolved (detector, type, direction, server, tool) entries kept; the key space is small in practice."""


def strongest(actions: Sequence[Action]) -> Action:
    """The strongest of `actions` (`allow` for none)."""
    best = Action.ALLOW
    for action in actions:
        if _RANK[action] > _RANK[best]:
            best = action
    return best


def _apply(spec: ActionSpec, severity: Severity) -> Action | None:
    if isinstance(spec, str):
        return None if spec == "off" else Action(spec)
    chosen: str | None = None
    best = -1
    level = _SEVERITY_ORDER[severity]
    for threshold, name in spec.items():
        rank = _SEVERITY_ORDER[Severity(threshold)]
        if best < rank <= level:
            best, chosen = rank, name
    return None if chosen is None or chosen == "off" else Action(chosen)


def _direction_spec(entry: ActionEntry, direction: Direction) -> ActionSpec | None:
    if isinstance(entry, str):
        return entry
    return getattr(entry, direction.value)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class _Scope:
    specificity: int
    servers: tuple[str, ...]
    tools: tuple[str, ...]
    actions: Mapping[str, ActionEntry]

    def applies(self, server: str | None, tool: str | None) -> bool:
        if self.servers and (server is None or not any(fnmatch.fnmatchcase(server, g) for g in self.servers)):
            return False
        return not (
            self.tools and (tool is None or not any(fnmatch.fnmatchcase(tool, g) for g in self.tools))
        )

    def spec_for(self, detector: str, type_: str, direction: Direction) -> ActionSpec | None:
        exact = self.actions.get(f"{detector}.{type_}")
        if exact is not None and (spec := _direction_spec(exact, direction)) is not None:
            return spec
        globs = [k for k in self.actions if "*" in k and k.startswith(f"{detector}.")]
        for key in sorted(globs, key=len, reverse=True):
            if fnmatch.fnmatchcase(f"{detector}.{type_}", key):
                spec = _direction_spec(self.actions[key], direction)
                if spec is not None:
                    return spec
        plain = self.actions.get(detector)
        return None if plain is None else _direction_spec(plain, direction)


def _scope(index: int, override: OverrideConfig) -> tuple[int, int, _Scope]:
    specificity = (2 if override.tools else 0) + (1 if override.servers else 0)
    scope = _Scope(specificity, tuple(override.servers), tuple(override.tools), override.actions)
    return (-specificity, -index, scope)


class ActionTable:
    """The compiled `actions` + `overrides` of a `GuardrailsConfig`; answers "what do we do with this finding"."""

    def __init__(self, config: GuardrailsConfig) -> None:
        ordered = sorted((_scope(i, o) for i, o in enumerate(config.overrides)), key=lambda t: (t[0], t[1]))
        self._scopes: tuple[_Scope, ...] = (
            *(s for _, _, s in ordered),
            _Scope(-1, (), (), config.actions),
        )
        self._cache: dict[tuple[str, str, Severity, Direction, str | None, str | None], Action | None] = {}

    def resolve(
        self,
        detector: str,
        type_: str,
        severity: Severity,
        direction: Direction,
        *,
        server: str | None = None,
        tool: str | None = None,
    ) -> Action | None:
        """The action for one finding, or `None` when it is switched off there."""
        key = (detector, type_, severity, direction, server, tool)
        cached = self._cache.get(key, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        result: Action | None = None
        for scope in self._scopes:
            if not scope.applies(server, tool):
                continue
            spec = scope.spec_for(detector, type_, direction)
            if spec is not None:
                result = _apply(spec, severity)
                break
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key] = result
        return result

    def may_act(self, detector: str, direction: Direction) -> bool:
        """Whether any scope could give a finding of `detector` an action in `direction` (else skip it)."""
        for scope in self._scopes:
            for key, entry in scope.actions.items():
                if key != detector and not key.startswith(f"{detector}."):
                    continue
                spec = _direction_spec(entry, direction)
                if spec is None:
                    continue
                if isinstance(spec, str) and spec != "off":
                    return True
                if isinstance(spec, dict) and any(v != "off" for v in spec.values()):
                    return True
        return False


_MISSING: Final = object()
