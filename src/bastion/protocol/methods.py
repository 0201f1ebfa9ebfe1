"""The MCP method catalogue as data: who may send each method and how the gateway routes it."""

from __future__ import annotations

import enum
from typing import Final


class Route(enum.Enum):
    """How the gateway handles a client->server request."""

    LOCAL = "local"
    """Answered by Bastion itself (initialize, ping, server/discover)."""
    LIST = "list"
    """Aggregated over every upstream the caller may see."""
    TOOL = "tool"
    """Routed by the namespaced tool name in `params.name`."""
    PROMPT = "prompt"
    """Routed by the namespaced prompt name in `params.name`."""
    URI = "uri"
    """Routed by `params.uri` to the upstream that listed it."""
    COMPLETION = "completion"
    """Routed by `params.ref` (a prompt name or a resource URI)."""
    BROADCAST = "broadcast"
    """Sent to every upstream that supports it (logging/setLevel)."""
    TASK = "task"
    """Routed by `params.taskId` to the upstream that created the task."""


CLIENT_REQUESTS: Final[dict[str, Route]] = {
    "initialize": Route.LOCAL,
    "ping": Route.LOCAL,
    "server/discover": Route.LOCAL,
    "subscriptions/listen": Route.LOCAL,
    "tools/list": Route.LIST,
    "prompts/list": Route.LIST,
    "resources/list": Route.LIST,
    "resources/templates/list": Route.LIST,
    "tools/call": Route.TOOL,
    "prompts/get": Route.PROMPT,
    "resources/read": Route.URI,
    "resources/subscribe": Route.URI,
    "resources/unsubscribe": Route.URI,
    "completion/complete": Route.COMPLETION,
    "logging/setLevel": Route.BROADCAST,
    "tasks/get": Route.TASK,
    "tasks/result": Route.TASK,
    "tasks/cancel": Route.TASK,
    "tasks/list": Route.LIST,
}
"""Every request a client may send, with its route. Anything else is `MethodNotFound`."""

SERVER_REQUESTS: Final = frozenset(
    {
        "ping",
        "sampling/createMessage",
        "elicitation/create",
        "roots/list",
        "tasks/get",
        "tasks/result",
        "tasks/list",
        "tasks/cancel",
    }
)
"""Requests an upstream server may send to the client (relayed to the client session that caused them)."""

LIST_KEYS: Final[dict[str, str]] = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
    "tasks/list": "tasks",
}
"""Which result member holds the items of each list method."""

LIST_CHANGED: Final[dict[str, str]] = {
    "notifications/tools/list_changed": "tools/list",
    "notifications/prompts/list_changed": "prompts/list",
    "notifications/resources/list_changed": "resources/list",
}
"""Upstream notifications that invalidate a cached list."""

CAPABILITY_OF_LIST: Final[dict[str, str]] = {
    "tools/list": "tools",
    "prompts/list": "prompts",
    "resources/list": "resources",
    "resources/templates/list": "resources",
}
"""The server capability an upstream must advertise for a list method to be asked of it."""

NAMESPACE_SEPARATOR: Final = "__"
"""Between server name and tool/prompt name: `everything__echo`. Server names cannot contain it."""
