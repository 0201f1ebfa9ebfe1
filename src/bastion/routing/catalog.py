"""The aggregated catalogue: every upstream's tools, prompts, resources and templates, namespaced and cached.

Rules:
- Tool and prompt names become `<server>__<name>`; server names cannot contain `__`, so the split is unambiguous
  and collisions are impossible by construction. With `routing.namespace: false` (one server) names are kept.
- Resources keep their URIs and are routed to the upstream that listed them; templates route by matching.
- Bastion fetches every page of an upstream list itself and serves the merged list as one page.
- Caches are per upstream and per list; an upstream's `list_changed` or a state change drops them.
- Only available upstreams contribute (connected, circuit closed): a down upstream's tools disappear instead of
  failing the whole list. A call naming a tool of an unavailable upstream is still routed to it, so that it is
  authorized first and then fails fast with the upstream's own reason (down, circuit open), not "Unknown tool".
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from bastion.errors import BastionError, InvalidParams
from bastion.pipeline.chain import Pipeline
from bastion.pipeline.stages.listing import screen_listing
from bastion.protocol.jsonrpc import as_dict
from bastion.protocol.methods import CAPABILITY_OF_LIST, LIST_KEYS, NAMESPACE_SEPARATOR
from bastion.transports.base import JsonDict
from bastion.upstream.connection import State, UpstreamConnection

logger = logging.getLogger("bastion.routing")

MAX_PAGES: Final = 100
"""Pages fetched per upstream list before we stop (a server that pages forever cannot hang us)."""


@dataclass(slots=True)
class _Cached:
    items: list[JsonDict]
    fetched: float
    names: frozenset[str] = frozenset()
    """Names of the items (tools, prompts), so routing a call is a set lookup, not a scan."""


@dataclass(slots=True)
class _Routes:
    """Where each URI and template came from, rebuilt with every resource list."""

    uris: dict[str, str] = field(default_factory=dict)
    templates: list[tuple[re.Pattern[str], str, str]] = field(default_factory=list)
    loaded: set[str] = field(default_factory=set)
    """The list methods aggregated at least once (each is fetched on its own, whatever clients listed)."""


def _template_regex(template: str) -> re.Pattern[str]:
    # RFC 6570 level 1-2 is enough to route: `{x}` matches one segment, `{+x}`/`{#x}` anything.
    out, pos = [], 0
    for m in re.finditer(r"\{([+#./;?&]?)([^}]*)\}", template):
        out.append(re.escape(template[pos : m.start()]))
        out.append(".*" if m.group(1) in ("+", "#", "?", "&", ";", ".") else "[^/]*")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


class Catalog:
    """Aggregates upstream lists and resolves names and URIs to upstreams."""

    def __init__(
        self, upstreams: dict[str, UpstreamConnection], *, namespace: bool = True, ttl_seconds: float = 300.0
    ) -> None:
        self.upstreams = upstreams
        self.namespace = namespace
        self.ttl = ttl_seconds
        self.listing = Pipeline()
        """The listing chain (`pipeline/stages/listing.py`), run over each upstream list before it is cached: what
        it withholds is unknown to routing too. Given by the composition root."""
        self._cache: dict[tuple[str, str], _Cached] = {}
        self._routes = _Routes()
        self._tasks: dict[str, str] = {}

    # -- names -------------------------------------------------------------------------------------------------

    def public_name(self, server: str, name: str) -> str:
        """The name a client sees for an upstream's tool or prompt."""
        return f"{server}{NAMESPACE_SEPARATOR}{name}" if self.namespace else name

    def split_name(self, public: str) -> tuple[str, str] | None:
        """`(server, upstream name)` for a client-facing name, or None when it names no configured server."""
        if not self.namespace:
            return (next(iter(self.upstreams)), public) if self.upstreams else None
        server, sep, name = public.partition(NAMESPACE_SEPARATOR)
        if not sep or not name or server not in self.upstreams:
            return None
        return server, name

    # -- lists -------------------------------------------------------------------------------------------------

    def invalidate(self, server: str, method: str | None = None) -> None:
        """Drop cached lists of one upstream (all of them, or one method's)."""
        for key in [k for k in self._cache if k[0] == server and (method is None or k[1] == method)]:
            del self._cache[key]

    async def upstream_list(self, server: str, method: str) -> list[JsonDict]:
        """One upstream's complete list for `method` (cached), in the upstream's own names."""
        conn = self.upstreams[server]
        if not conn.available or CAPABILITY_OF_LIST.get(method, "") not in conn.capabilities:
            return []
        cached = self._cache.get((server, method))
        if cached is not None and time.monotonic() - cached.fetched < self.ttl:
            return cached.items
        items: list[JsonDict] = []
        cursor: Any = None
        key = LIST_KEYS[method]
        for _ in range(MAX_PAGES):
            params: JsonDict = {} if cursor is None else {"cursor": cursor}
            reply = await conn.request(method, params)
            result = reply.get("result")
            if not isinstance(result, dict):
                raise _upstream_error(reply, server)
            page = result.get(key)
            if isinstance(page, list):
                items.extend(i for i in page if isinstance(i, dict))
            cursor = result.get("nextCursor")
            if cursor is None:
                break
        items = await screen_listing(self.listing, server, method, items)
        names = frozenset(str(i["name"]) for i in items if "name" in i)
        self._cache[(server, method)] = _Cached(items, time.monotonic(), names)
        return items

    async def _names(self, server: str, method: str) -> frozenset[str]:
        cached = self._cache.get((server, method))
        if cached is None or time.monotonic() - cached.fetched >= self.ttl:
            await self.upstream_list(server, method)
            cached = self._cache.get((server, method))
        return cached.names if cached is not None else frozenset()

    async def aggregate(self, method: str) -> list[JsonDict]:
        """The merged, namespaced list over every ready upstream; a failing upstream is skipped and logged."""
        merged: list[JsonDict] = []
        routes = _Routes() if method in ("resources/list", "resources/templates/list") else None
        for server in self.upstreams:
            try:
                items = await self.upstream_list(server, method)
            except BastionError as exc:
                logger.warning("upstream %s failed %s: %s", server, method, exc.reason)
                continue
            merged.extend(self._present(server, method, items, routes))
        if routes is not None:
            self._merge_routes(method, routes)
        return merged

    def _present(
        self, server: str, method: str, items: Iterable[JsonDict], routes: _Routes | None
    ) -> list[JsonDict]:
        if method in ("tools/list", "prompts/list"):
            if not self.namespace:
                return list(items)
            return [{**item, "name": self.public_name(server, str(item.get("name", "")))} for item in items]
        if routes is not None:
            for item in items:
                if isinstance(uri := item.get("uri"), str):
                    routes.uris.setdefault(uri, server)
                if isinstance(template := item.get("uriTemplate"), str):
                    routes.templates.append((_template_regex(template), template, server))
        return list(items)

    def _merge_routes(self, method: str, routes: _Routes) -> None:
        self._routes.loaded.add(method)
        if method == "resources/list":
            self._routes.uris = routes.uris
        else:
            self._routes.templates = routes.templates

    # -- resolution --------------------------------------------------------------------------------------------

    async def resolve_named(self, method: str, public: str) -> tuple[str, str]:
        """Route a tool or prompt name; unknown names raise exactly what a denied name raises (no oracle)."""
        split = self.split_name(public)
        kind = "tool" if method == "tools/call" else "prompt"
        if split is None:
            raise InvalidParams(f"Unknown {kind}: {public}")
        server, name = split
        if not self.upstreams[server].available:
            return server, name  # the call itself fails fast, with the reason, once policy has seen it
        list_method = "tools/list" if kind == "tool" else "prompts/list"
        if name not in await self._names(server, list_method):
            raise InvalidParams(f"Unknown {kind}: {public}")
        return server, name

    async def resolve_uri(self, uri: str) -> str:
        """The upstream serving a resource URI (exact listing first, then templates)."""
        for method in ("resources/list", "resources/templates/list"):
            if method not in self._routes.loaded:
                await self.aggregate(method)
        server = self._routes.uris.get(uri)
        if server is None:
            for pattern, _template, candidate in self._routes.templates:
                if pattern.fullmatch(uri):
                    server = candidate
                    break
        if server is None:
            resourceful = [
                n
                for n, c in self.upstreams.items()
                if c.state is State.READY and "resources" in c.capabilities
            ]
            if len(resourceful) == 1:
                server = resourceful[0]
        if server is None or server not in self.upstreams:
            raise InvalidParams(f"Unknown resource: {uri}", data={"uri": uri})
        return server

    def server_of_uri(self, uri: str) -> str | None:
        """The upstream that listed a resource URI or URI template, if any (no network)."""
        return self._routes.uris.get(uri) or self.resolve_template(uri)

    def resolve_template(self, template: str) -> str | None:
        """The upstream that listed a URI template (for `completion/complete` on `ref/resource`)."""
        for _pattern, listed, server in self._routes.templates:
            if listed == template:
                return server
        return None

    def remember_task(self, task_id: str, server: str) -> None:
        """Record which upstream created a task so `tasks/*` calls can be routed back to it."""
        self._tasks[task_id] = server

    def task_server(self, task_id: str) -> str | None:
        return self._tasks.get(task_id)


def _upstream_error(reply: JsonDict, server: str) -> BastionError:
    from bastion.errors import UpstreamError

    error = as_dict(reply.get("error"))
    return UpstreamError(
        f"server {server} failed the list request", data={"server": server, "code": error.get("code")}
    )
