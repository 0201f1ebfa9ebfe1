"""The listing chain: stages that judge what the upstreams list (tool definitions, prompts, resources, templates)
before the catalogue caches it.

Why a chain of its own, run where the catalogue fills its cache rather than on each client's list: a tool the
screen withholds must also be unknown to routing (calling it gets exactly the error an unknown tool gets, no
oracle), and a definition is the same for every caller, so it is judged once per upstream listing instead of once
per client list. The stages are ordinary `Stage`s run by an ordinary `Pipeline` (response path); the composition
root gives their order in one literal list, next to the request chain's.

Rules:
- A listing exchange carries `method` = the list method, `server` = the upstream and `result` = {list key: the
  upstream's complete list}; a stage withholds or rewrites items by replacing `exchange.result`.
- A stage that fails or refuses fails that upstream's listing (fail closed): the catalogue lists nothing from it
  and routes nothing to its unlisted items, and the failure is logged like any stage failure.
- The pool runs the same chain over a scoped connection's own tool list (its own process may serve other
  definitions): only the tools it keeps may be called on that connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from bastion.pipeline.chain import Pipeline
from bastion.pipeline.exchange import Exchange, SessionInfo
from bastion.pipeline.stage import BaseStage
from bastion.pipeline.verdicts import PASS, Verdict
from bastion.protocol.methods import LIST_KEYS
from bastion.types import JsonDict

ToolScreen = Callable[[str, list[JsonDict]], Awaitable[list[JsonDict]]]
"""(server, its complete tool list) -> the tools clients may see and call."""
EntryScreen = Callable[[str, str, list[JsonDict]], Awaitable[list[JsonDict]]]
"""(server, list method, its complete list) -> the prompts, resources or templates clients may see."""

LISTING_SESSION: Final = SessionInfo(session_id="bastion-listing", transport="upstream")
"""The session a listing exchange names: Bastion itself, reading an upstream's list (no client is involved)."""
_ENTRY_LISTS: Final = frozenset({"prompts/list", "resources/list", "resources/templates/list"})


async def screen_listing(chain: Pipeline, server: str, method: str, items: list[JsonDict]) -> list[JsonDict]:
    """Run the listing chain over one upstream's complete list; what it keeps.

    Raises:
        BastionError: a stage failed or refused (the listing fails closed).
    """
    if not chain:
        return items
    key = LIST_KEYS[method]
    exchange = Exchange(session=LISTING_SESSION, method=method, params={}, server=server, result={key: items})
    error = await chain.run_response(exchange)
    if error is not None:
        raise error
    kept = (exchange.result or {}).get(key)
    return [item for item in kept if isinstance(item, dict)] if isinstance(kept, list) else []


class ToolScreenStage(BaseStage):
    """Tool definitions: poisoning and rug pulls (`guard/screen.py`), before routing knows a tool."""

    name = "tool_screen"

    def __init__(self, screen: ToolScreen) -> None:
        self._screen = screen

    async def on_response(self, exchange: Exchange) -> Verdict:
        if exchange.method == "tools/list" and exchange.server is not None and exchange.result is not None:
            exchange.result = {"tools": await self._screen(exchange.server, exchange.result.get("tools", []))}
        return PASS


class EntryScreenStage(BaseStage):
    """Prompt, resource and template entries: the guard's `listing` channel."""

    name = "entry_screen"

    def __init__(self, screen: EntryScreen) -> None:
        self._screen = screen

    async def on_response(self, exchange: Exchange) -> Verdict:
        method, server, result = exchange.method, exchange.server, exchange.result
        if method in _ENTRY_LISTS and server is not None and result is not None:
            key = LIST_KEYS[method]
            exchange.result = {key: await self._screen(server, method, result.get(key, []))}
        return PASS
