"""The per-session MCP state machine, sans I/O: handshake, era, request ids in flight, cancellation, relays to the
client, subscriptions and log level. Plain synchronous code; `bastion/session.py` is the async adapter around it.

Rules:
- Handshake era: `initialize` is answered once; a second one is refused (`InvalidRequest`). Until it is
  answered, only `ping`, `server/discover` and requests carrying the 2026-07-28 envelope are served (others are
  refused with `InvalidRequest`). `notifications/initialized` opens the session to notifications (list_changed,
  resource updates); the phases and their transitions are the table `TRANSITIONS`.
- 2026-07-28 era: each request carrying the `_meta` envelope is served on its own, whatever the phase; its
  version, capabilities and client info are adopted for the session (`Hello`). The methods that era removed are
  `MethodNotFound` when they carry the envelope.
- A request id is in flight from admission until its reply is sent: a second request with the same id is refused
  (`InvalidRequest`), and more than `max_in_flight` at once are refused (`RateLimited`).
- `notifications/cancelled` (or a closed stream) for an id not in flight, unknown or finished, is ignored.
- Server->client requests go out with ids of Bastion's own (`bastion-N`): a client response is matched by that id
  only, once; any other response is dropped.
- One `subscriptions/listen` at a time. While it is open, only the notifications it asked for go out, stamped;
  otherwise a list_changed for a list the client has not fetched again since the last notice is sent once.
- Log messages reach the client only after `logging/setLevel`, and only at or above the level it set.
- Nothing here awaits, sends, reads or knows the pipeline; handles (tasks, futures) are opaque values to it.
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from bastion.errors import InvalidParams, InvalidRequest, MethodNotFound, RateLimited
from bastion.protocol import jsonrpc, versions
from bastion.protocol.jsonrpc import JsonDict, RequestId
from bastion.protocol.methods import CLIENT_REQUESTS, LIST_CHANGED, Route
from bastion.protocol.subscriptions import Listen

H = TypeVar("H")
"""The adapter's handle of a request in flight (an asyncio task)."""
R = TypeVar("R")
"""The adapter's handle of a relayed server->client request (a future for the client's answer)."""

LOG_LEVELS: Final = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
"""RFC 5424 severities in MCP's `logging/setLevel`, least severe first."""
CAPABILITY_OF_SERVER_REQUEST: Final = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}
"""The client capability a server->client request needs."""
HANDSHAKE_ONLY_METHODS: Final = frozenset(
    {"resources/subscribe", "resources/unsubscribe", "logging/setLevel"}
)
"""Handshake-era methods a 2026-07-28 upstream session cannot serve."""
RELAY_ID_PREFIX: Final = "bastion-"


class Phase(enum.StrEnum):
    """Where a session is in its handshake."""

    NEW = "new"
    """Nothing yet."""
    ANSWERED = "answered"
    """`initialize` answered; the client has not confirmed with `notifications/initialized`."""
    CONFIRMED = "confirmed"
    """`notifications/initialized` came without `initialize` (tolerated: served, and one initialize accepted)."""
    READY = "ready"
    """Handshake done (or restored from a sealed id another replica handed out)."""
    CLOSED = "closed"
    """Ended; nothing more is served or sent."""


class Event(enum.StrEnum):
    """What moves a session between phases."""

    INITIALIZE = "initialize"
    INITIALIZED = "notifications/initialized"
    RESTORE = "restore"
    CLOSE = "close"


class Outcome(enum.StrEnum):
    """What the adapter does with the event."""

    ACCEPT = "accept"
    REFUSE = "refuse"
    IGNORE = "ignore"


def _transitions() -> dict[tuple[Phase, Event], tuple[Phase, Outcome]]:
    table = {
        (Phase.NEW, Event.INITIALIZE): (Phase.ANSWERED, Outcome.ACCEPT),
        (Phase.NEW, Event.INITIALIZED): (Phase.CONFIRMED, Outcome.ACCEPT),
        (Phase.NEW, Event.RESTORE): (Phase.READY, Outcome.ACCEPT),
        (Phase.ANSWERED, Event.INITIALIZE): (Phase.ANSWERED, Outcome.REFUSE),
        (Phase.ANSWERED, Event.INITIALIZED): (Phase.READY, Outcome.ACCEPT),
        (Phase.ANSWERED, Event.RESTORE): (Phase.READY, Outcome.ACCEPT),
        (Phase.CONFIRMED, Event.INITIALIZE): (Phase.READY, Outcome.ACCEPT),
        (Phase.CONFIRMED, Event.INITIALIZED): (Phase.CONFIRMED, Outcome.IGNORE),
        (Phase.CONFIRMED, Event.RESTORE): (Phase.READY, Outcome.ACCEPT),
        (Phase.READY, Event.INITIALIZE): (Phase.READY, Outcome.REFUSE),
        (Phase.READY, Event.INITIALIZED): (Phase.READY, Outcome.IGNORE),
        (Phase.READY, Event.RESTORE): (Phase.READY, Outcome.IGNORE),
    }
    for phase in Phase:
        table[(phase, Event.CLOSE)] = (
            Phase.CLOSED,
            Outcome.IGNORE if phase is Phase.CLOSED else Outcome.ACCEPT,
        )
        if phase is Phase.CLOSED:
            for event in (Event.INITIALIZE, Event.INITIALIZED, Event.RESTORE):
                table[(phase, event)] = (Phase.CLOSED, Outcome.IGNORE)
    return table


TRANSITIONS: Final[dict[tuple[Phase, Event], tuple[Phase, Outcome]]] = _transitions()
"""(phase, event) -> (next phase, outcome), for every pair."""
SERVES_REQUESTS: Final = frozenset({Phase.ANSWERED, Phase.CONFIRMED, Phase.READY})
"""Phases in which handshake-era requests beyond `initialize`/`ping` are served."""
SENDS_NOTIFICATIONS: Final = frozenset({Phase.CONFIRMED, Phase.READY})
"""Phases in which session-level notifications go to the client."""


class Era(enum.StrEnum):
    """The protocol era of one request."""

    HANDSHAKE = "handshake"
    MODERN = "modern"
    """2026-07-28: the request carries the `_meta` envelope."""


SUBSCRIPTION_METHODS: Final = frozenset({"resources/subscribe", "resources/unsubscribe"})
"""The routed calls whose success changes the session's subscriptions (`SessionState.after_call`)."""


def era_of(params: JsonDict) -> Era:
    """The era of a request, by its params."""
    return Era.MODERN if versions.envelope_version(params) is not None else Era.HANDSHAKE


class Step(enum.StrEnum):
    """How the adapter serves a request the session accepted."""

    INITIALIZE = "initialize"
    PING = "ping"
    DISCOVER = "discover"
    LISTEN = "listen"
    LIST = "list"
    CALL = "call"
    SET_LOG_LEVEL = "set_log_level"


LOCAL_STEPS: Final = {"initialize": Step.INITIALIZE, "ping": Step.PING, "server/discover": Step.DISCOVER}
"""Requests Bastion answers itself, in any phase."""
ROUTE_STEPS: Final = {
    Route.LIST: Step.LIST,
    Route.BROADCAST: Step.SET_LOG_LEVEL,
    Route.TOOL: Step.CALL,
    Route.PROMPT: Step.CALL,
    Route.URI: Step.CALL,
    Route.COMPLETION: Step.CALL,
    Route.TASK: Step.CALL,
}
"""Routed requests, once the session serves requests."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """What a client said about itself (`initialize`, or a 2026-07-28 envelope); None: keep what is known."""

    protocol_version: str
    capabilities: JsonDict | None = None
    client_name: str | None = None
    client_version: str | None = None


def hello_of_initialize(params: JsonDict) -> Hello:
    """The client's `initialize`, with the version Bastion answers with."""
    caps = params.get("capabilities")
    client = jsonrpc.as_dict(params.get("clientInfo"))
    return Hello(
        protocol_version=versions.negotiate(params.get("protocolVersion")),
        capabilities=caps if isinstance(caps, dict) else {},
        client_name=str(client.get("name", ""))[:200],
        client_version=str(client.get("version", ""))[:100],
    )


def hello_of_envelope(params: JsonDict) -> Hello | None:
    """A 2026-07-28 request's envelope (members that are absent or malformed leave the known values); None for a
    handshake-era request (no envelope), so one look tells the era and the hello."""
    version = versions.envelope_version(params)
    if version is None:
        return None
    meta = params["_meta"]  # a dict: `envelope_version` found the version in it
    caps = meta.get(versions.META_CLIENT_CAPABILITIES)
    client = meta.get(versions.META_CLIENT_INFO)
    info: JsonDict | None = client if isinstance(client, dict) else None
    return Hello(
        protocol_version=version,
        capabilities=caps if isinstance(caps, dict) else None,
        client_name=None if info is None else str(info.get("name", ""))[:200],
        client_version=None if info is None else str(info.get("version", ""))[:100],
    )


def relay_refusal(method: str, capabilities: JsonDict, *, stateless: bool) -> MethodNotFound | None:
    """Why a server->client request cannot go to this client (no stream, or the capability is missing)."""
    capability = CAPABILITY_OF_SERVER_REQUEST.get(method)
    if stateless or (capability and capability not in capabilities):
        return MethodNotFound(f"Client does not support {method}")
    return None


class SessionState(Generic[H, R]):
    """One downstream session's protocol state. The adapter feeds events in and acts on what comes back."""

    def __init__(self, *, stateless: bool = False, max_in_flight: int) -> None:
        self.phase = Phase.NEW
        self.stateless = stateless
        """One 2026-07-28 HTTP request's worth of session: no handshake, no stream of its own."""
        self.max_in_flight = max_in_flight
        self._in_flight: dict[RequestId, H] = {}
        self._targets: dict[RequestId, tuple[str, str]] = {}
        self._relay_ids = itertools.count(1)
        self._relays: dict[RequestId, R] = {}
        self.subscriptions: set[str] = set()
        """Resource URIs this client subscribed to."""
        self.wants_logs = False
        self.log_level = "info"
        """The least severe log level this client asked for (`logging/setLevel`)."""
        self.listen: Listen | None = None
        self._listed: set[str] = set()
        self._stale: set[str] = set()
        """Lists this client fetched and was told changed since: more list_changed would say nothing new."""

    # -- handshake ---------------------------------------------------------------------------------------------

    def fire(self, event: Event) -> Outcome:
        """Apply one handshake event (the table `TRANSITIONS`) and say what became of it."""
        self.phase, outcome = TRANSITIONS[(self.phase, event)]
        return outcome

    def initialize(self) -> None:
        """`initialize` arrived. Raises `InvalidRequest` when it was answered already."""
        if self.fire(Event.INITIALIZE) is Outcome.REFUSE:
            raise InvalidRequest("session is already initialized")

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    @property
    def initialized(self) -> bool:
        """The client confirmed the handshake: session-level notifications may go to it."""
        return self.phase in SENDS_NOTIFICATIONS

    def step(self, method: str, era: Era) -> Step:
        """How to serve request `method` of this era now.

        Raises:
            MethodNotFound: an unknown method, or one the 2026-07-28 era removed sent with its envelope.
            InvalidRequest: a handshake-era request before `initialize`.
        """
        modern = era is Era.MODERN
        if modern and method in versions.REMOVED_IN_MODERN:
            raise MethodNotFound(f"Method not found: {method}")
        if (local := LOCAL_STEPS.get(method)) is not None:
            return local
        if not modern and not self.stateless and self.phase not in SERVES_REQUESTS:
            raise InvalidRequest("session is not initialized: send initialize first")
        if method == "subscriptions/listen" and modern and not self.stateless:
            return Step.LISTEN
        route = CLIENT_REQUESTS.get(method)
        step = ROUTE_STEPS.get(route) if route is not None else None
        if step is None:
            raise MethodNotFound(f"Method not found: {method}")
        return step

    def needs_handshake_era(self, method: str, era: Era, capabilities: JsonDict) -> bool:
        """Whether a call needs a handshake-era upstream session: a handshake-era client that can answer server
        requests mid-call or asked for logs, or a method the 2026-07-28 era removed."""
        if era is Era.MODERN:
            return False
        return (
            self.wants_logs  # it set a log level: its calls' log messages come on a handshake-era session
            or method in HANDSHAKE_ONLY_METHODS
            or any(c in capabilities for c in CAPABILITY_OF_SERVER_REQUEST.values())
        )

    # -- requests in flight ------------------------------------------------------------------------------------

    def admit(self, request_id: RequestId) -> InvalidRequest | RateLimited | None:
        """The refusal of a new request with this id, or None when it may start (then call `begin`)."""
        if request_id in self._in_flight:
            return InvalidRequest("request id already in flight")
        if len(self._in_flight) >= self.max_in_flight:
            return RateLimited("too many concurrent requests in this session", data={"retryAfter": 1})
        return None

    def begin(self, request_id: RequestId, handle: H) -> None:
        """An admitted request started; `handle` is what cancelling it needs."""
        self._in_flight[request_id] = handle

    def finish(self, request_id: RequestId, _handle: object = None) -> None:
        """A request's reply went out (or it was cancelled): its id is free again (`_handle`: so it can be the
        handle's own done-callback)."""
        self._in_flight.pop(request_id, None)
        self._targets.pop(request_id, None)

    def in_flight(self, request_id: object) -> bool:
        return request_id in self._in_flight

    def handles(self) -> list[H]:
        """The handles of every request in flight."""
        return list(self._in_flight.values())

    def cancel(self, request_id: object) -> H | None:
        """The handle to cancel for `request_id`; None for an id not in flight (ignored, as the spec asks)."""
        if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
            return None
        return self._in_flight.get(request_id)

    def target(self, request_id: RequestId, server: str, item: str) -> None:
        """Which upstream item a routed call in flight goes to (a server request during it is attributed)."""
        self._targets[request_id] = (server, item)

    def target_of(self, request_id: RequestId | None) -> tuple[str, str] | None:
        return self._targets.get(request_id) if request_id is not None else None

    # -- server->client requests -------------------------------------------------------------------------------

    def open_relay(self, handle: R) -> str:
        """A new relay id for a server->client request; the client's answer will settle `handle`."""
        relay_id = f"{RELAY_ID_PREFIX}{next(self._relay_ids)}"
        self._relays[relay_id] = handle
        return relay_id

    def settle_relay(self, response: JsonDict) -> R | None:
        """The handle a client response answers (once); None for an id Bastion never sent or already settled."""
        relay_id = response.get("id")
        if not isinstance(relay_id, (str, int)) or isinstance(relay_id, bool):
            return None
        return self._relays.pop(relay_id, None)

    def drop_relay(self, relay_id: str) -> None:
        self._relays.pop(relay_id, None)

    def drain_relays(self) -> list[R]:
        """Every relay still waiting (the session is closing)."""
        handles, self._relays = list(self._relays.values()), {}
        return handles

    # -- subscriptions, lists, logs ----------------------------------------------------------------------------

    def after_call(self, method: str, params: JsonDict) -> None:
        """A routed call succeeded: remember what it subscribed to or unsubscribed from (only the
        `SUBSCRIPTION_METHODS` change anything: callers may skip the others)."""
        uri = params.get("uri")
        if method == "resources/subscribe" and isinstance(uri, str):
            self.subscriptions.add(uri)
        elif method == "resources/unsubscribe":
            self.subscriptions.discard(uri if isinstance(uri, str) else "")

    def begin_listen(self, request_id: RequestId, params: JsonDict) -> tuple[Listen, list[str]]:
        """A `subscriptions/listen`: what it asks for and the URIs to subscribe to. Raises `InvalidRequest` when
        one is open already."""
        if self.listen is not None:
            raise InvalidRequest("a subscriptions/listen is already open in this session")
        return Listen.asked(request_id, params)

    def listed(self, method: str) -> None:
        """The client fetched list `method`: the next change of it is news again."""
        self._listed.add(method)
        self._stale.discard(method)

    def outgoing(self, method: str, params: JsonDict | None) -> JsonDict | None:
        """The session-level notification as it goes to the client, or None when it must not go."""
        if self.listen is not None:  # a 2026-07-28 client: only what it listens for, stamped
            return self.listen.stamp(method, params)
        if not self.initialized or self.stateless:
            return None
        listing = LIST_CHANGED.get(method)
        if listing is not None and listing in self._listed:
            if listing in self._stale:
                return None  # told already, and it has not listed since: one notice covers every change
            self._stale.add(listing)
        return jsonrpc.notification(method, params)

    @staticmethod
    def check_log_level(level: object) -> str:
        """The level of a `logging/setLevel`. Raises `InvalidParams` for anything but an RFC 5424 level."""
        if level not in LOG_LEVELS:
            raise InvalidParams("params.level must be a logging level")
        return str(level)

    def set_log_level(self, level: str) -> None:
        self.wants_logs, self.log_level = True, level

    def accepts_log(self, params: JsonDict) -> bool:
        """Whether a `notifications/message` with these params is at or above this session's level."""
        level = params.get("level")
        if not self.wants_logs or level not in LOG_LEVELS:
            return False
        return LOG_LEVELS.index(level) >= LOG_LEVELS.index(self.log_level)
