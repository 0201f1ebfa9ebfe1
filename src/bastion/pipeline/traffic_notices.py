"""Notices for traffic that has no exchange of its own: client notifications and server->client requests.

Why: every message that crosses the gateway must leave an audit event. Requests and responses are exchanges;
a client's notification (a cancellation above all) and an upstream's request to the client (sampling,
elicitation, roots) are not, so the session reports them as notices built here.

Rules:
- Only names, ids, codes and the client's choice are kept: never a sampled message, a form's content or roots.
- Client-chosen strings (a request id, a cancellation reason) are capped; printing them is the reader's job
  (`bastion audit` escapes control characters).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final, Protocol

from bastion.pipeline.notice import Notice, NoticeKind
from bastion.protocol import jsonrpc

if TYPE_CHECKING:
    from bastion.pipeline.exchange import SessionInfo
    from bastion.types import JsonDict, RequestId


class Gateway(Protocol):
    """What these builders need of the gateway (`core.ports.SessionHost` has it): the session notice."""

    def session_notice(self, kind: NoticeKind, session: Any, **detail: Any) -> Notice: ...


class Session(Protocol):
    """What these builders read of a client session (`core.session.DownstreamSession` is one): who it is."""

    @property
    def info(self) -> SessionInfo: ...


MAX_TEXT: Final = 200
"""Longest client-chosen string kept in a notice's detail."""


def _text(value: Any) -> str:
    return str(value)[:MAX_TEXT] if value is not None else ""


def notification_notice(gateway: Gateway, session: Session, method: str, params: JsonDict) -> Notice:
    """A client notification: its method, and for a cancellation the request it names and the reason given."""
    detail: dict[str, Any] = {"method": _text(method)}
    if method == "notifications/cancelled":
        detail.update(requestId=_text(params.get("requestId")), reason=_text(params.get("reason")))
    return gateway.session_notice(NoticeKind.NOTIFICATION, session, **detail)


def relay_notice(
    gateway: Gateway,
    session: Session,
    message: JsonDict,
    related: RequestId | None,
    answer: JsonDict,
    *,
    server: str = "",
) -> Notice:
    """An upstream's request relayed to this session's client, and how that client (the session's principal)
    answered: a result (with an elicitation's `action`), or an error code (refused, unsupported, timed out).
    `server` is the upstream that sent it (empty for Bastion's own questions)."""
    error = answer.get("error")
    detail: dict[str, Any] = {
        "method": _text(message.get("method")),
        "relatedRequestId": _text(related),
        "answeredBy": session.info.principal.name,
        "answer": "error" if error is not None else "result",
    }
    if isinstance(error, dict):
        detail["errorCode"] = error.get("code")
    else:
        action = jsonrpc.as_dict(answer.get("result")).get("action")
        if isinstance(action, str):
            detail["action"] = _text(action)
    return replace(gateway.session_notice(NoticeKind.SERVER_REQUEST, session, **detail), server=server)
