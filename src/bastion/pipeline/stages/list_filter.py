"""`ListFilterStage`: a caller's lists hold only what the policy lets that caller use.

It runs on the response path of `tools/list`, `prompts/list`, `resources/list` and `resources/templates/list`
(every other exchange passes untouched), and is placed last in the chain so that it runs first on the way back:
entries the caller may not see reach no other stage, no detector and no observer.

Rules:
- Visibility is `PolicyEngine.visible` for the policy in force at the moment of the list (hot reloads apply).
- The narrowed list is a `Mutate(record=False)`: hiding entries is the policy's view, not a redaction, so no
  decision is recorded and the exchange's outcome is unchanged.
- Names are attributed to servers by the gateway's catalogue (`split`, `server_of_uri`); an entry that cannot be
  attributed is hidden.
"""

from __future__ import annotations

from collections.abc import Callable

from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import BaseStage
from bastion.pipeline.stages.authorize import LIST_KINDS, filter_listing
from bastion.pipeline.verdicts import PASS, Mutate, Verdict
from bastion.policy.holder import PolicyHolder
from bastion.protocol.methods import LIST_KEYS


class ListFilterStage(BaseStage):
    """Hides list entries the session's principal may not use."""

    name = "list-filter"

    def __init__(
        self,
        holder: PolicyHolder,
        *,
        split: Callable[[str], tuple[str, str] | None],
        server_of_uri: Callable[[str], str | None],
    ) -> None:
        self._holder = holder
        self._split = split
        self._server_of_uri = server_of_uri

    async def on_response(self, exchange: Exchange) -> Verdict:
        method = exchange.method
        result = exchange.result
        if method not in LIST_KINDS or not isinstance(result, dict):
            return PASS
        key = LIST_KEYS[method]
        items = result.get(key)
        if not isinstance(items, list):
            return PASS
        visible = filter_listing(
            self._holder.engine,
            exchange.session.principal,
            method,
            items,
            split=self._split,
            server_of_uri=self._server_of_uri,
        )
        if len(visible) == len(items):
            return PASS
        return Mutate(body={**result, key: visible}, record=False)
