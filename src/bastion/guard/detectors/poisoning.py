"""The `poisoning` detector: hidden instructions in tool definitions (name, description, inputSchema including nested
property descriptions, annotations).

A tool description is read by the model as trusted text, so it is held to a stricter standard than a tool result:
hidden blocks (`<IMPORTANT>`), secrecy towards the user, requests to read credential files or to pass data through
an argument, instructions about *other* tools (shadowing), and any invisible character are reported, on top of every
prompt-injection class. The engine walks the whole definition, so a poisoned `inputSchema.properties.x.description`
is found like a poisoned `description`.
"""

from __future__ import annotations

from typing import Final

from bastion.guard.config import PoisoningConfig
from bastion.guard.detectors import obfuscation as ob
from bastion.guard.detectors.injection import PhraseDetector
from bastion.guard.detectors.injection_rules import CORE_RULES, POISONING_RULES
from bastion.guard.finding import Severity

_STRICTER: Final = {
    "hidden_block": Severity.HIGH,
    "secrecy": Severity.HIGH,
    "tool_coercion": Severity.HIGH,
    "role_marker": Severity.HIGH,
    "invisible_characters": Severity.MEDIUM,
    "homoglyph": Severity.HIGH,
    "encoded_text": Severity.HIGH,
}


class PoisoningDetector(PhraseDetector):
    """Tool poisoning and shadowing in `tools/list` entries."""

    name = "poisoning"
    severity_overrides = _STRICTER

    def __init__(self, config: PoisoningConfig | None = None) -> None:
        self.config = config if config is not None else PoisoningConfig()
        super().__init__((*CORE_RULES, *POISONING_RULES, *ob.OBFUSCATION_RULES))
