"""`ChannelGuard`: the guardrails on everything a server says to a client outside a routed result.

A routed call's arguments and result go through `GuardStage`; tool definitions through `ToolScreen`. The rest of
what an upstream can put in front of a model is here, in both protocol eras:

| channel        | what                                                                  | guard direction |
|----------------|-----------------------------------------------------------------------|-----------------|
| `error`        | a JSON-RPC error an upstream returns (`message`, `data`)              | response        |
| `request`      | a sampling or elicitation request relayed to a handshake-era client   | response        |
| `notification` | log messages and progress messages relayed to clients                | response        |
| `instructions` | the `instructions` an upstream sends at initialize, merged for clients | tool            |
| `listing`      | a prompt, resource or resource-template entry of a list (descriptions) | tool            |

Rules:
- `block` (and `ask`: nobody can be asked here) withholds the message: an error becomes a guardrail `Denied`
  error, a relayed request is answered with that error, a notification or listing entry is dropped, instructions
  are left out. `redact` sends the redacted message. `flag` sends it as is. Every non-allow verdict is a notice.
- Instructions and listings are definitions a model reads as trusted, so they get the `tool` direction (the
  poisoning detector), like tool definitions.
- Pure and synchronous, like `Guard.inspect`; the caller emits the notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from bastion.guard.actions import Action
from bastion.guard.engine import Guard, GuardResult
from bastion.types import Notice, NoticeKind

CHANNELS: Final = {
    "error": "response",
    "request": "response",
    "notification": "response",
    "instructions": "tool",
    "listing": "tool",
}
"""Channel -> guard direction."""

_WITHHOLD: Final = frozenset({Action.BLOCK, Action.ASK})


@dataclass(frozen=True, slots=True, kw_only=True)
class Screened:
    """The verdict on one message of a channel."""

    allowed: bool
    """Whether the message may go on."""
    payload: Any
    """What to send (redacted when needed); the input itself when nothing changed."""
    result: GuardResult
    """The guard's findings and action."""

    def notice(self, channel: str, server: str | None, what: str) -> Notice | None:
        """The notice to emit about it (None when nothing was found)."""
        if not self.result.findings:
            return None
        return Notice(
            kind=NoticeKind.GUARDRAIL,
            server=server or "",
            target=what,
            severity="critical" if not self.allowed else "warning",
            detail={
                "channel": channel,
                "action": str(self.result.action),
                "withheld": not self.allowed,
                "findings": [f.to_dict() for f in self.result.findings],
            },
        )


class ChannelGuard:
    """Screens the server-to-client channels that are not routed results."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self._instructions: dict[tuple[str, str], Screened] = {}

    def screen(self, channel: str, server: str | None, payload: Any) -> Screened:
        """Judge one message of `channel` (see the table in the module docstring)."""
        result = self.guard.inspect(CHANNELS[channel], payload, server=server)
        return Screened(allowed=result.action not in _WITHHOLD, payload=result.payload, result=result)

    def instructions(self, server: str, text: str) -> Screened:
        """`screen("instructions", ...)`, cached per server and text: they are merged into every initialize."""
        key = (server, text)
        cached = self._instructions.get(key)
        if cached is None:
            cached = self.screen("instructions", server, text)
            if len(self._instructions) > 256:
                self._instructions.clear()
            self._instructions[key] = cached
        return cached
