"""CEL argument conditions: compiled once at policy load, evaluated per call with no I/O.

A condition that cannot be evaluated (a missing argument, a type error) has no value: allow rules then do not
allow, deny rules then deny. Either way an error can never widen what a caller may do.

`celpy` (with lark, pendulum and dateutil, about 7 MB of RSS) is imported by the functions, not by this module, so
a policy without `when:` conditions never loads it.
"""

from __future__ import annotations

import logging
from typing import Any

from bastion.errors import ConfigError

logger = logging.getLogger("bastion.policy")


class Condition:
    """One compiled CEL expression."""

    def __init__(self, source: str, *, path: str, functions: dict[str, Any] | None = None) -> None:
        """Compile `source`; `functions` are extra CEL functions (e.g. the flow rules' `session.tainted`)."""
        self.source = source
        self.path = path
        import celpy
        from celpy.celparser import CELParseError

        env = celpy.Environment()
        try:
            self._program = env.program(env.compile(source), functions=functions)
        except CELParseError as exc:
            first_line = str(exc).splitlines()[0] if str(exc) else "syntax error"
            raise ConfigError(f"invalid CEL condition: {first_line}", path=path) from None

    def evaluate(self, activation: dict[str, Any]) -> bool | None:
        """True or False, or None when the expression fails or is not boolean."""
        import celpy

        try:
            result = self._program.evaluate(activation)
        except Exception as exc:  # noqa: BLE001 - user expressions are a fault boundary: any failure is "no value"
            logger.debug("condition %s failed: %s", self.path, type(exc).__name__)
            return None
        if isinstance(result, celpy.celtypes.BoolType | bool):
            return bool(result)
        return None


def activation(
    *, args: dict[str, Any], principal: dict[str, Any], kind: str, server: str, name: str
) -> dict[str, Any]:
    """The variables a condition sees: `args`, `principal`, `tool`, `server`, `kind`, `name`."""
    import celpy
    from celpy.adapter import json_to_cel

    return {
        "args": json_to_cel(args),
        "principal": json_to_cel(principal),
        "tool": celpy.celtypes.StringType(name if kind == "tool" else ""),
        "server": celpy.celtypes.StringType(server),
        "kind": celpy.celtypes.StringType(kind),
        "name": celpy.celtypes.StringType(name),
    }
