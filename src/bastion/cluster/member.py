"""`ClusterMember`: one replica's part in a cluster: session registry, heartbeat, and reacting to others' changes.

It knows the gateway only through its ports, the state store and the policy holder; it knows nothing of HTTP.
`build_cluster(...)` is what the composition root calls (last); `ClusterMember.contribution()` is what it adds to
the gateway: a session listener, its lifecycle, the revocations and a `/readyz` section.

Rules:
- Every change made through any replica or the CLI reaches this replica within about a second, through the store's
  event feed (Redis pub/sub): an approved or rejected tool pin releases held tools (`record` events of
  `tool-pins`), a revoked API key ends the sessions it opened (`api_keys`), a DELETEd session id closes this
  replica's copy (`session-revoked`), a policy reloaded elsewhere makes this replica re-read its own policy file
  when its policy differs (`policy`), and `bastion cluster reload` makes every replica re-read it (`policy-reload`).
- Events are hints, the store is the truth: after the feed breaks (Redis restarted), the member reconnects with
  backoff and re-checks what it may have missed. The slower polls (tool pins every 2 s, approvals every 0.25 s)
  stay as the safety net, and cover the embedded store, whose events never leave the process.
- A reload caused by an event is never announced again, so replicas with different policy files cannot ping-pong.
- Nothing here fails a client call: registry and heartbeat failures are logged (once per outage) and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio.to_thread

from bastion.cluster.registry import (
    HEARTBEAT_SECONDS,
    REFRESH_SECONDS,
    REVOKED_TOPIC,
    SessionRegistry,
    session_key,
)
from bastion.core.config import ClusterConfig, default_replica
from bastion.core.contribution import Contribution, Resource
from bastion.core.ports import HostedSession, Ports
from bastion.core.tasks import BackgroundTasks
from bastion.state.base import RECORD_TOPIC, StateEvent, StateStore
from bastion.state.config import StateConfig

if TYPE_CHECKING:
    from bastion.guard.screen import ToolScreen
    from bastion.policy.holder import PolicyHolder

logger = logging.getLogger("bastion.cluster")

POLICY_TOPIC: Final = "policy"
"""A replica reloaded its policy (`data.hash`): replicas whose policy differs re-read their file."""
RELOAD_TOPIC: Final = "policy-reload"
"""Every replica re-reads its policy file (`bastion cluster reload`)."""
RECONNECT_MAX_SECONDS: Final = 5.0
"""Longest wait between two attempts to re-subscribe to the event feed."""
RECEIVE_SECONDS: Final = 1.0
"""Longest single wait for an event (the loop also notices being stopped at this pace)."""


class MemberConfig(Protocol):
    """The sections of the configuration the cluster member reads (`bastion.config.BastionConfig` is one)."""

    @property
    def state(self) -> StateConfig:
        """The shared store (sealed session ids need one a replica can share)."""
        ...

    @property
    def cluster(self) -> ClusterConfig:
        """This replica among others."""
        ...


def policy_hash(holder: PolicyHolder | None) -> str:
    """A short digest of the policy in force (`""` without a policy): equal on replicas that agree."""
    if holder is None:
        return ""
    return hashlib.sha256(holder.engine.config.model_dump_json().encode()).hexdigest()[:16]


def replica_name(config: MemberConfig) -> str:
    """`cluster.replica_id`, or the host name (the audit chain uses the same id)."""
    return config.cluster.replica_id or default_replica()


class ClusterMember:
    """Registry upkeep and event handling for one replica."""

    def __init__(
        self,
        gateway: Ports,
        store: StateStore,
        registry: SessionRegistry,
        *,
        policy: PolicyHolder | None = None,
        screen: ToolScreen | None = None,
    ) -> None:
        self.gateway = gateway
        self.store = store
        self.registry = registry
        self.policy = policy
        self.screen = screen
        self.cluster_sessions = 0
        """Sessions across the cluster at the last refresh (for `/readyz` and the dashboard)."""
        self.replicas = 0
        """Live replicas at the last refresh."""
        self.events_seen = 0
        """Events handled."""
        self.listening = asyncio.Event()
        """Set while subscribed to the event feed (changes made from now on will be heard)."""
        self._started = time.time()
        self._tasks = BackgroundTasks()
        self._loops: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._quiet_reload = False
        self._failing: set[str] = set()
        self._by_key: dict[str, HostedSession] = {}
        """Sessions held here by registry key, so a termination event finds its copy without hashing every id."""
        self._policy = policy_hash(policy)

    # -- wiring -----------------------------------------------------------------------------------------------

    def contribution(self) -> Contribution:
        """What this member adds to the gateway: it hears sessions start and end, runs while the gateway runs,
        answers whether a sealed id was terminated, and shows its numbers on `/readyz`."""
        return Contribution(
            session_listeners=(self._on_session,),
            resources=(Resource(name="cluster member", open=self.start, close=self.stop),),
            revocations=self.registry,
            health=(("cluster", self.snapshot),),
        )

    async def start(self) -> None:
        if self.policy is not None and self._on_reload not in self.policy.on_reload:
            self.policy.on_reload.append(self._on_reload)
        self._loop = asyncio.get_running_loop()
        self._loops = [
            asyncio.create_task(self._upkeep(), name="cluster-upkeep"),
            asyncio.create_task(self._listen(), name="cluster-events"),
        ]

    async def stop(self) -> None:
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self._tasks.drain()
        await self._quietly("leave", self.registry.leave())

    def snapshot(self) -> dict[str, Any]:
        """What `/readyz` shows of the cluster (numbers only)."""
        return {
            "replica": self.registry.replica,
            "replicas": self.replicas,
            "sessions": self.cluster_sessions,
            "policy": self._policy,
        }

    def _soon(self, name: str, work: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(self._quietly(name, work))

    async def _quietly(self, name: str, work: Coroutine[Any, Any, Any]) -> None:
        try:
            await work
        except Exception as exc:  # noqa: BLE001 - supervisor: the registry is advisory, an outage fails no client
            if name not in self._failing:
                self._failing.add(name)
                logger.warning("cluster %s failed (%s); retrying quietly", name, type(exc).__name__)
            return
        if name in self._failing:
            self._failing.discard(name)
            logger.info("cluster %s works again", name)

    # -- sessions ---------------------------------------------------------------------------------------------

    def _on_session(self, event: str, session: HostedSession) -> None:
        if session.stateless:
            return
        if event in ("start", "restore"):
            self._by_key[session_key(session.session_id)] = session
            self._soon("registry", self.registry.register(session.session_id, session.info.principal.name))
        elif event == "end":
            self._by_key.pop(session_key(session.session_id), None)
            self._soon("registry", self.registry.forget(session.session_id))

    def _held(self) -> dict[str, str]:
        return {
            s.session_id: s.info.principal.name
            for s in list(self.gateway.sessions.values())
            if not s.stateless and not s.closed and s.info.protocol_version
        }

    async def _upkeep(self) -> None:
        beats = max(1, round(REFRESH_SECONDS / HEARTBEAT_SECONDS))
        for beat in itertools.count():
            await self._quietly("heartbeat", self.refresh(sessions=beat % beats == 0))
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def refresh(self, *, sessions: bool = True) -> None:
        """Say this replica is alive (and refresh its sessions' entries), then read the cluster's numbers."""
        held = self._held()
        if sessions:
            await self.registry.refresh(held)
        await self.registry.heartbeat(self._status(len(held)))
        self.cluster_sessions = await self.registry.count()
        self.replicas = len(await self.registry.replicas())

    def _status(self, sessions: int) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self._started,
            "sessions": sessions,
            "policy": self._policy,
            "ready": self.gateway.is_ready(),
        }

    # -- events -----------------------------------------------------------------------------------------------

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            try:
                subscription = await self.store.subscribe()
            except Exception as exc:  # noqa: BLE001 - supervisor: store down, retry; the polls cover meanwhile
                logger.warning(
                    "cluster events unavailable (%s); retrying in %.1fs", type(exc).__name__, delay
                )
                await asyncio.sleep(delay)
                delay = min(RECONNECT_MAX_SECONDS, delay * 2)
                continue
            try:
                self.listening.set()
                await self._catch_up()
                delay = 0.1
                while True:
                    event = await subscription.receive(RECEIVE_SECONDS)
                    if event is not None:
                        await self.handle(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - supervisor: a broken feed, resubscribe and catch up
                logger.warning("cluster event feed broke (%s); resubscribing", type(exc).__name__)
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    await subscription.aclose()

    async def _catch_up(self) -> None:
        """After (re)subscribing: act on what an event would have told us."""
        if self.screen is not None and self.screen.pins is not None and self.screen.held:
            await self.screen.check_held()

    async def handle(self, event: StateEvent) -> None:
        """Act on one event from the feed (any replica's, this one's included)."""
        self.events_seen += 1
        try:
            if event.topic == RECORD_TOPIC:
                await self._record_changed(
                    str(event.data.get("namespace", "")), str(event.data.get("id", ""))
                )
            elif event.topic == REVOKED_TOPIC:
                await self._session_revoked(str(event.data.get("key", "")))
            elif event.topic == POLICY_TOPIC:
                if event.origin != self.store.origin and event.data.get("hash") != self._policy:
                    await self._reload_policy(
                        "a policy change on replica " + str(event.data.get("replica", "?"))
                    )
            elif event.topic == RELOAD_TOPIC:
                await self._reload_policy("bastion cluster reload")
        except Exception:  # one bad event must not end the feed
            logger.exception("handling cluster event %s failed", event.topic)

    async def _record_changed(self, namespace: str, record_id: str) -> None:
        from bastion.auth.apikeys import NAMESPACE as KEYS
        from bastion.guard.pins import NAMESPACE as PINS

        if (
            namespace == PINS
            and self.screen is not None
            and self.screen.pins is not None
            and self.screen.held
        ):
            await self.screen.check_held()
        elif namespace == KEYS:
            record = await self.store.get_record(KEYS, record_id)
            if record is None or record.get("revoked_at") is not None:
                await self._end_sessions_of_key(record_id)

    async def _end_sessions_of_key(self, key_id: str) -> None:
        """A revoked key's sessions end now (its next request would fail anyway; open streams would not)."""
        doomed = [s for s in list(self.gateway.sessions.values()) if s.info.principal.key_id == key_id]
        for session in doomed:
            logger.info("session %s ended: its API key was revoked", session.session_id[:8])
            await session.aclose()

    async def _session_revoked(self, key: str) -> None:
        session = self._by_key.get(key)
        if session is not None and not session.closed:
            logger.info("session %s terminated on another replica; closing this copy", session.session_id[:8])
            await session.aclose()

    async def _reload_policy(self, why: str) -> None:
        holder = self.policy
        if holder is None or holder.path is None:
            return
        logger.info("re-reading the policy file (%s)", why)
        self._quiet_reload = True
        try:
            await anyio.to_thread.run_sync(holder.reload)
        finally:
            self._quiet_reload = False
        self._policy = policy_hash(holder)
        await self._quietly("heartbeat", self.registry.heartbeat(self._status(len(self._held()))))

    def _on_reload(self, applied: bool) -> None:
        # Called in the watcher's worker thread or a signal handler: hop onto the loop.
        if not applied or self._loop is None:
            return
        quiet = self._quiet_reload
        self._loop.call_soon_threadsafe(self._announce_policy, quiet)

    def _announce_policy(self, quiet: bool) -> None:
        self._policy = policy_hash(self.policy)
        if quiet:
            return
        data = {"hash": self._policy, "replica": self.registry.replica}
        self._soon("policy announcement", self.store.publish(POLICY_TOPIC, data))
        self._soon("heartbeat", self.registry.heartbeat(self._status(len(self._held()))))


def build_cluster(
    config: MemberConfig,
    store: StateStore,
    ports: Ports,
    *,
    policy: PolicyHolder | None = None,
    screen: ToolScreen | None = None,
) -> ClusterMember:
    """This replica's session registry and cluster member (works on both stores)."""
    if config.state.backend == "redis" and config.cluster.session_secret is None:
        logger.warning(
            "state is shared (redis) but cluster.session_secret is not set: a handshake-era session works only on "
            "the replica that created it, and a load balancer hashing on Mcp-Session-Id will send some sessions "
            "elsewhere; set the same secret on every replica"
        )
    registry = SessionRegistry(
        store, replica_name(config), revoke_seconds=config.cluster.session_max_age_seconds
    )
    return ClusterMember(ports, store, registry, policy=policy, screen=screen)
