"""Capability-aware lists: a tool, prompt or resource that needs a client capability (sampling, elicitation, roots)
the client did not declare is left out of that client's lists.

Why: a client that cannot answer sampling would only get an `isError` "Client does not support ..." from such a
tool; better that its model never sees it. What needs what comes from two places: the config
(`servers.<name>.client_capabilities`, upstream-local names, for tools known in advance) and what Bastion sees
(an upstream asking for sampling while serving a call marks that tool as needing it, from then on).

Rules:
- Only lists are filtered; calling a hidden item still reaches the upstream, which decides (as before).
- `routing.capability_aware_lists: false` turns the filtering off.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Final

from bastion.types import JsonDict

ITEM_NAME: Final = {"tools/list": "name", "prompts/list": "name", "resources/list": "uri"}
"""List methods that are filtered, and the member naming each item."""
CLIENT_CAPABILITIES: Final = ("sampling", "elicitation", "roots")


class CapabilityNeeds:
    """Which upstream items need which client capability, configured and learned."""

    def __init__(self, configured: Mapping[str, Mapping[str, Sequence[str]]]) -> None:
        self._needs: dict[tuple[str, str], set[str]] = {
            (server, item): set(caps) for server, items in configured.items() for item, caps in items.items()
        }

    def learn(self, server: str, item: str, capability: str) -> None:
        """Remember that `item` of `server` asked the client for `capability` while being served."""
        if capability in CLIENT_CAPABILITIES:
            self._needs.setdefault((server, item), set()).add(capability)

    def missing(self, server: str, item: str, declared: Mapping[str, object]) -> set[str]:
        """The capabilities `item` needs that the client did not declare."""
        return {c for c in self._needs.get((server, item), ()) if c not in declared}

    def filter(
        self,
        method: str,
        items: list[JsonDict],
        declared: Mapping[str, object],
        locate: Callable[[str], tuple[str, str] | None],
    ) -> list[JsonDict]:
        """The items of a list result that a client with `declared` capabilities can use.

        Args:
            method: The list method.
            items: The merged, public items.
            declared: The client's declared capabilities.
            locate: Public name -> (server, upstream-local name); a URI maps to its server and itself.
        """
        member = ITEM_NAME.get(method)
        if member is None or not self._needs:
            return items
        kept = []
        for item in items:
            name = item.get(member)
            where = locate(name) if isinstance(name, str) else None
            if where is None or not self.missing(where[0], where[1], declared):
                kept.append(item)
        return kept
