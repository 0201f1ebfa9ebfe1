"""A 2026-07-28 `subscriptions/listen` held by a session that has its own stream (`bastion stdio`).

Rules (`basic/patterns/subscriptions.mdx`): the acknowledgement names the subset honoured and comes first; only
the kinds asked for are sent, each stamped with the subscription id (the listen request's id); request-scoped
messages never go on it; a graceful end is a `complete` result with the same id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from bastion.protocol import jsonrpc
from bastion.types import JsonDict, RequestId

META_SUBSCRIPTION_ID: Final = "io.modelcontextprotocol/subscriptionId"
MAX_URIS: Final = 100
"""Resource URIs one `subscriptions/listen` may subscribe to."""
LIST_CHANGED_KINDS: Final = {
    "notifications/tools/list_changed": "toolsListChanged",
    "notifications/prompts/list_changed": "promptsListChanged",
    "notifications/resources/list_changed": "resourcesListChanged",
}


@dataclass(slots=True, kw_only=True)
class Listen:
    """One open subscription: what was asked, and what is honoured."""

    listen_id: RequestId
    """The JSON-RPC id of the listen request, which is also the subscription id."""
    kinds: set[str] = field(default_factory=set)
    """The list_changed kinds asked for (`toolsListChanged`, ...)."""
    uris: set[str] = field(default_factory=set)
    """Resource URIs honoured (the subscribe succeeded)."""

    @classmethod
    def asked(cls, listen_id: RequestId, params: JsonDict) -> tuple[Listen, list[str]]:
        """The listen a request asks for, and the resource URIs it wants watched (at most `MAX_URIS`)."""
        wanted = jsonrpc.as_dict(params.get("notifications"))
        kinds = {key for key in LIST_CHANGED_KINDS.values() if wanted.get(key) is True}
        requested = wanted.get("resourceSubscriptions")
        uris = [u for u in requested if isinstance(u, str)] if isinstance(requested, list) else []
        return cls(listen_id=listen_id, kinds=kinds), uris[:MAX_URIS]

    def acknowledgement(self) -> JsonDict:
        """The `notifications/subscriptions/acknowledged` naming the honoured subset."""
        honoured: JsonDict = {key: True for key in sorted(self.kinds)}
        if self.uris:
            honoured["resourceSubscriptions"] = sorted(self.uris)
        return jsonrpc.notification(
            "notifications/subscriptions/acknowledged",
            {"notifications": honoured, "_meta": {META_SUBSCRIPTION_ID: self.listen_id}},
        )

    def stamp(self, method: str, params: JsonDict | None) -> JsonDict | None:
        """The notification as it goes on this subscription, or None when it was not asked for."""
        body = params or {}
        if method in LIST_CHANGED_KINDS:
            if LIST_CHANGED_KINDS[method] not in self.kinds:
                return None
        elif method != "notifications/resources/updated" or body.get("uri") not in self.uris:
            return None
        meta = {**jsonrpc.as_dict(body.get("_meta")), META_SUBSCRIPTION_ID: self.listen_id}
        return jsonrpc.notification(method, {**body, "_meta": meta})

    def completion(self) -> JsonDict:
        """The result that ends the subscription gracefully."""
        return {"resultType": "complete", "_meta": {META_SUBSCRIPTION_ID: self.listen_id}}
