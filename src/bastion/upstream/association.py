"""Who receives each server->client message: the association rules of upstream isolation, as data and one function.

An upstream connection belongs to a *scope* (`servers.<name>.isolation`): one downstream session (`session`), one
principal (`principal`), or everybody (`shared`). A message an upstream sends toward clients is delivered only to
the audience the table below names for its transport, isolation and kind; an empty audience means a request is
refused to the upstream with an error and a notification is dropped. Nothing is ever delivered to "the newest
caller": association is data (the connection's scope, the request id HTTP relates a message to, a progress token),
never a guess.

Rules (kind x isolation; "related" is the call a transport relates a message to: Streamable HTTP relates a
message sent on a request's response stream to that request; stdio and HTTP+SSE never relate anything, so on
them a `shared` connection can never tie a request to a caller and refuses it):

| kind             | session                          | principal                               | shared                                 |
|------------------|----------------------------------|-----------------------------------------|----------------------------------------|
| request          | the scope's session (on the      | the related call, else the only call in | the related call; else refused (always |
| (sampling,       | related or only call's stream    | flight, else the only session with      | on stdio and SSE)                      |
| elicitation,     | when there is one)               | calls in flight (every call here is the |                                        |
| roots)           |                                  | principal's); else refused              |                                        |
| progress         | the owner of the progress token  | the owner of the progress token         | the owner of the progress token        |
| log message      | the scope's session, if it asked | the related call's session, else the    | the related call's session; else       |
|                  | for logs                         | principal's sessions that asked         | dropped                                |
| resource update  | the scope's session, if it       | the principal's sessions subscribed to  | every session subscribed to the URI    |
|                  | subscribed to the URI            | the URI                                 |                                        |
| list changed     | every session (it carries no     | every session                           | every session                          |
|                  | data; the catalogue is refetched)|                                         |                                        |

Log messages are then filtered by each recipient's own `logging/setLevel` (the session's, never the upstream's).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from bastion.types import RequestId


class Isolation(enum.StrEnum):
    """How an upstream server's connections are shared (`servers.<name>.isolation`)."""

    SESSION = "session"
    PRINCIPAL = "principal"
    SHARED = "shared"


class Kind(enum.StrEnum):
    """The kinds of server->client messages, as far as their audience goes."""

    REQUEST = "request"
    PROGRESS = "progress"
    LOG = "log"
    RESOURCE_UPDATED = "resource_updated"
    LIST_CHANGED = "list_changed"


class Audience(enum.StrEnum):
    """One cell of the table: how the recipients of a message are found."""

    SCOPE_SESSION = "scope_session"
    PRINCIPAL_CALLER = "principal_caller"
    RELATED_CALL = "related_call"
    PROGRESS_OWNER = "progress_owner"
    SCOPE_SESSION_LOGS = "scope_session_logs"
    CALL_ELSE_PRINCIPAL_LOGS = "call_else_principal_logs"
    SCOPE_SESSION_SUBSCRIBED = "scope_session_subscribed"
    PRINCIPAL_SUBSCRIBERS = "principal_subscribers"
    SUBSCRIBERS = "subscribers"
    EVERY_SESSION = "every_session"


TRANSPORTS: Final = ("stdio", "sse", "streamable-http")
"""Upstream transports. The table is the same for each; what differs is that only Streamable HTTP ever relates a
server->client message to a request, which the rules that use "related" depend on."""


def default_isolation(transport: str) -> Isolation:
    """HTTP upstreams get an upstream session per downstream session; stdio gets a process per principal."""
    return Isolation.PRINCIPAL if transport == "stdio" else Isolation.SESSION


def _rule(isolation: Isolation, kind: Kind) -> Audience:
    if kind is Kind.PROGRESS:
        return Audience.PROGRESS_OWNER
    if kind is Kind.LIST_CHANGED:
        return Audience.EVERY_SESSION
    by_isolation: dict[Isolation, dict[Kind, Audience]] = {
        Isolation.SESSION: {
            Kind.REQUEST: Audience.SCOPE_SESSION,
            Kind.LOG: Audience.SCOPE_SESSION_LOGS,
            Kind.RESOURCE_UPDATED: Audience.SCOPE_SESSION_SUBSCRIBED,
        },
        Isolation.PRINCIPAL: {
            Kind.REQUEST: Audience.PRINCIPAL_CALLER,
            Kind.LOG: Audience.CALL_ELSE_PRINCIPAL_LOGS,
            Kind.RESOURCE_UPDATED: Audience.PRINCIPAL_SUBSCRIBERS,
        },
        Isolation.SHARED: {
            Kind.REQUEST: Audience.RELATED_CALL,
            Kind.LOG: Audience.RELATED_CALL,
            Kind.RESOURCE_UPDATED: Audience.SUBSCRIBERS,
        },
    }
    return by_isolation[isolation][kind]


RULES: Final[dict[tuple[str, Isolation, Kind], Audience]] = {
    (t, i, k): _rule(i, k) for t in TRANSPORTS for i in Isolation for k in Kind
}
"""The table above as data: (transport, isolation, kind) -> audience."""


def kind_of(method: str) -> Kind | None:
    """The kind of a server->client notification (requests are `Kind.REQUEST`); None for one never relayed."""
    if method == "notifications/progress":
        return Kind.PROGRESS
    if method == "notifications/message":
        return Kind.LOG
    if method == "notifications/resources/updated":
        return Kind.RESOURCE_UPDATED
    if method.endswith("/list_changed"):
        return Kind.LIST_CHANGED
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """Whom one upstream connection serves."""

    isolation: Isolation
    session: str = ""
    """The downstream session id (`session` isolation)."""
    principal: str = ""
    """The principal name (`principal` isolation; also set for `session`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    """A downstream request in flight on the connection."""

    session: str
    principal: str
    request_id: RequestId


@dataclass(frozen=True, slots=True, kw_only=True)
class Listener:
    """A downstream session that may receive notifications."""

    session: str
    principal: str
    wants_logs: bool = False
    subscriptions: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Deliver to this session, on the stream of `related` when it is set."""

    session: str
    related: RequestId | None = None


def audience(
    rule: Audience,
    *,
    scope: Scope,
    related: Call | None,
    in_flight: Sequence[Call],
    listeners: Sequence[Listener] = (),
    uri: str | None = None,
    token_owner: Call | None = None,
) -> tuple[Target, ...]:
    """The recipients of one message under `rule` (empty: refuse the request, drop the notification).

    Args:
        rule: The table's cell for the message.
        scope: Whom the connection serves.
        related: The call the transport relates the message to (Streamable HTTP), if any.
        in_flight: The calls in flight on the connection.
        listeners: The gateway's sessions (for logs and resource updates).
        uri: The URI of a resource update.
        token_owner: The call whose progress token a progress notification carries.
    """
    only = in_flight[0] if len(in_flight) == 1 else None
    if rule is Audience.PROGRESS_OWNER:
        return _to(token_owner)
    if rule is Audience.SCOPE_SESSION:
        call = related or only
        return (Target(session=scope.session, related=call.request_id if call else None),)
    if rule is Audience.PRINCIPAL_CALLER:
        if related is not None or only is not None:
            return _to(related or only)
        callers = {c.session for c in in_flight}
        return (Target(session=callers.pop()),) if len(callers) == 1 else ()
    if rule is Audience.RELATED_CALL:
        return _to(related)
    if rule is Audience.SCOPE_SESSION_LOGS:
        call = related or only
        return tuple(
            Target(session=s.session, related=call.request_id if call else None)
            for s in listeners
            if s.session == scope.session and s.wants_logs
        )
    if rule is Audience.CALL_ELSE_PRINCIPAL_LOGS:
        if related is not None:
            return _to(related)
        return tuple(
            Target(session=s.session) for s in listeners if s.principal == scope.principal and s.wants_logs
        )
    if rule is Audience.EVERY_SESSION:
        return tuple(Target(session=s.session) for s in listeners)
    subscribed = [s for s in listeners if uri is not None and uri in s.subscriptions]
    if rule is Audience.SCOPE_SESSION_SUBSCRIBED:
        return tuple(Target(session=s.session) for s in subscribed if s.session == scope.session)
    if rule is Audience.PRINCIPAL_SUBSCRIBERS:
        return tuple(Target(session=s.session) for s in subscribed if s.principal == scope.principal)
    return tuple(Target(session=s.session) for s in subscribed)


def _to(call: Call | None) -> tuple[Target, ...]:
    return () if call is None else (Target(session=call.session, related=call.request_id),)
