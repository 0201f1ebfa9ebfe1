"""`AnomalyDetector`: learns each principal's tool-use patterns and raises alerts when they change sharply.

Five kinds of alert, per principal:
- `rate_spike`: calls in the current window exceed mean + k*stddev of an EWMA over past windows (and a minimum);
- `new_tool`: the first use of a tool the principal never used, once past its warm-up period;
- `denial_burst`: many denials or guardrail findings in a short window;
- `large_result`: a result far larger than the principal usually receives;
- `recon`: calls to many different servers in a short window.

Rules:
- `on_exchange` only enqueues a small event (no I/O, no serialisation, no reference to the result); a worker
  task does the analysis and the store I/O in batches (one wake-up per `BATCH_SECONDS`, not one per call), so
  detection never slows a call, and a failure in it is logged, never raised. A full queue skips events rather
  than blocking.
- Result size is estimated on the hot path from the content items' text and data lengths (a walk of a short
  list), never by serialising the result.
- Durable state goes through the `StateStore` (embedded or Redis): when a principal was first seen, its rate and
  result-size baselines, the tools it used, and the alert cool-downs, so replicas sharing a Redis share what was
  learnt and the cool-down. The current window's counts are per replica, in memory.
- One alert per kind per principal per cool-down (claimed in the store with `only_if_absent`, so replicas agree).
- An alert is a `Notice(kind=ALERT)` emitted through the gateway (audit records it, metrics count it), plus an
  optional webhook POST. Its detail holds names and counts only, never argument or result values.
- Keys hold a hash of the principal name, not the name.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import orjson

from bastion.pipeline.notice import Notice, NoticeKind
from bastion.state.base import KeyValueStore
from bastion.telemetry.config import AnomalyConfig
from bastion.telemetry.webhook import AlertWebhook
from bastion.types import Principal

if TYPE_CHECKING:
    from bastion.pipeline.exchange import Exchange

logger = logging.getLogger("bastion.telemetry.anomaly")

Emit = Callable[[Notice], Awaitable[None]]

KEY_PREFIX: Final = "anomaly:"
BASELINE_TTL_SECONDS: Final = 30 * 86400.0
"""How long an idle principal's baselines are kept in the store."""
MAX_IDLE_WINDOWS: Final = 200
"""Empty windows folded into the rate EWMA after a pause; beyond this the average is zero anyway."""
SIZE_ALPHA: Final = 0.1
"""EWMA smoothing factor of result sizes."""
MAX_TOOLS_CACHED: Final = 5_000
"""Known tools remembered in memory per principal (the store remembers all of them)."""
BATCH_SECONDS: Final = 0.05
"""How long the worker lets events gather after waking up: bounds alert latency, saves a wake-up per call."""

RATE_SPIKE: Final = "rate_spike"
NEW_TOOL: Final = "new_tool"
DENIAL_BURST: Final = "denial_burst"
LARGE_RESULT: Final = "large_result"
RECON: Final = "recon"
SEVERITY: Final = {
    RATE_SPIKE: "warning",
    NEW_TOOL: "warning",
    DENIAL_BURST: "critical",
    LARGE_RESULT: "warning",
    RECON: "critical",
}
"""Severity of each alert kind: bursts of refusals and broad probing look like an attack in progress."""


@dataclass(frozen=True, slots=True)
class _Event:
    """What the detector keeps of one exchange."""

    principal: Principal
    session_id: str
    now: float
    server: str | None
    tool: str | None
    """Upstream name of the tool a tools/call reached (None when denied or not a tool call)."""
    denied: bool
    findings: int
    size: int
    """Estimated result size in bytes (-1: no result, or size checks are off)."""


@dataclass(slots=True)
class _Principal:
    """What one replica knows of one principal."""

    key: str
    first_seen: float = 0.0
    window: int = -1
    count: int = 0
    mean: float = 0.0
    var: float = 0.0
    windows: int = 0
    size_mean: float = 0.0
    size_n: int = 0
    tools: set[str] = field(default_factory=set)
    bursts: deque[tuple[float, bool, int]] = field(default_factory=deque)
    servers: dict[str, float] = field(default_factory=dict)
    alerted: dict[str, float] = field(default_factory=dict)


class AnomalyDetector:
    """An `ExchangeObserver` that raises anomaly alerts. Close with `aclose()`."""

    def __init__(
        self,
        config: AnomalyConfig,
        store: KeyValueStore,
        emit: Emit,
        *,
        clock: Callable[[], float] = time.time,
        webhook: AlertWebhook | None = None,
    ) -> None:
        """Build a detector.

        Args:
            config: `telemetry.anomaly`.
            store: Where baselines, known tools and cool-downs live.
            emit: How an alert notice is published (`Gateway.emit`).
            clock: Wall-clock seconds; tests inject their own.
            webhook: Where alerts are also POSTed (default: from `config.webhook`).
        """
        self.config = config
        self._store = store
        self._emit = emit
        self._clock = clock
        self.webhook = webhook or (AlertWebhook(config.webhook) if config.webhook is not None else None)
        self._queue: asyncio.Queue[_Event] = asyncio.Queue(maxsize=config.queue_size)
        self._worker: asyncio.Task[None] | None = None
        self._nudge = asyncio.Event()
        """Set by `flush()`: analyse now instead of waiting for the batch to gather."""
        self._principals: OrderedDict[str, _Principal] = OrderedDict()
        self.skipped = 0
        """Exchanges not analysed because the queue was full."""
        self.failures = 0
        """Events whose analysis failed (logged)."""
        self.raised = 0
        """Alerts raised by this replica."""

    # -- hot path ----------------------------------------------------------------------------------------------

    async def on_exchange(self, exchange: Exchange) -> None:
        """Enqueue one finished exchange for analysis; never raises, never waits."""
        try:
            self._queue.put_nowait(self._event(exchange))
        except asyncio.QueueFull:
            self.skipped += 1
            return
        except Exception:  # detection must never fail a call
            self.failures += 1
            logger.exception("anomaly detection could not read an exchange")
            return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="bastion-anomaly")

    def _event(self, exchange: Exchange) -> _Event:
        denied = exchange.outcome == "deny"
        result = exchange.result
        return _Event(
            principal=exchange.session.principal,
            session_id=exchange.session.session_id,
            now=self._clock(),
            server=exchange.server,
            tool=exchange.target if exchange.method == "tools/call" and not denied else None,
            denied=denied,
            findings=sum(len(d.findings) for d in exchange.decisions) if exchange.decisions else 0,
            size=result_size(result) if result is not None and self.config.large_result.enabled else -1,
        )

    # -- the worker --------------------------------------------------------------------------------------------

    async def _run(self) -> None:
        queue = self._queue
        while True:
            event = await queue.get()
            if not self._nudge.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(BATCH_SECONDS):
                        await self._nudge.wait()
            while True:
                try:
                    await self._analyse(event)
                except Exception:  # a store outage or a bug here must not stop detection for later events
                    self.failures += 1
                    if self.failures == 1 or self.failures % 1000 == 0:  # an outage must not flood the log
                        logger.exception("anomaly detection failed (%d exchanges so far)", self.failures)
                finally:
                    queue.task_done()
                if queue.empty():
                    break
                event = queue.get_nowait()
            self._nudge.clear()

    async def flush(self) -> None:
        """Wait until every queued exchange is analysed and every webhook delivery has finished."""
        self._nudge.set()
        await self._queue.join()
        if self.webhook is not None:
            await self.webhook.flush()

    async def aclose(self) -> None:
        """Analyse what is queued (bounded), stop the worker, finish webhook deliveries."""
        if self._worker is not None:
            self._nudge.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self._queue.join()
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self.webhook is not None:
            await self.webhook.aclose()

    async def _analyse(self, event: _Event) -> None:
        # The checks are plain functions on in-memory state; only first sight of a principal, a closed window,
        # an unknown tool and an alert touch the store.
        name = event.principal.name
        state = self._principals.get(name)
        if state is None:
            state = await self._load(event)
        else:
            self._principals.move_to_end(name)
        if int(event.now // self.config.window_seconds) > state.window:
            await self._roll(state, event.now)
        state.count += 1
        config = self.config
        alerts: list[tuple[str, dict[str, Any]]] = []
        if config.rate_spike.enabled and (alert := self._check_rate(state)) is not None:
            alerts.append(alert)
        if config.new_tool.enabled and event.tool is not None and event.server is not None:
            tool = f"{event.server}__{event.tool}"
            if tool not in state.tools and await self._first_use(state, event, tool):
                alerts.append((NEW_TOOL, {"tool": tool}))
        if config.burst.enabled and (event.denied or event.findings):
            if (alert := self._check_burst(state, event)) is not None:
                alerts.append(alert)
        if config.large_result.enabled and event.size >= 0:
            if (alert := self._check_size(state, event)) is not None:
                alerts.append(alert)
        if config.recon.enabled and event.server is not None:
            if (alert := self._check_recon(state, event)) is not None:
                alerts.append(alert)
        for kind, detail in alerts:
            await self._raise(state, event, kind, detail)

    # -- per-principal state -----------------------------------------------------------------------------------

    async def _load(self, event: _Event) -> _Principal:
        """First sight of a principal on this replica: what the store remembers of it."""
        name = event.principal.name
        key = hashlib.sha256(name.encode()).hexdigest()[:32]
        state = _Principal(key=key, bursts=deque(maxlen=self.config.burst.threshold))
        first = f"{KEY_PREFIX}first:{key}"
        ttl = self.config.new_tool.memory_seconds
        if await self._store.set(first, repr(event.now).encode(), ttl=ttl, only_if_absent=True):
            state.first_seen = event.now
        else:
            raw = await self._store.get(first)
            state.first_seen = _number(raw, event.now)
        raw = await self._store.get(f"{KEY_PREFIX}base:{key}")
        if raw is not None:
            _restore(state, raw)
        if state.window < 0:
            state.window = int(event.now // self.config.window_seconds)
        self._principals[name] = state
        while len(self._principals) > self.config.max_principals:
            self._principals.popitem(last=False)
        return state

    async def _roll(self, state: _Principal, now: float) -> None:
        """Close the windows that ended before `now`: fold their counts into the rate baseline, then save it."""
        index = int(now // self.config.window_seconds)
        if index <= state.window:
            return  # same window (or a clock step back: keep counting in the current one)
        _fold(state, state.count, self.config.rate_spike.alpha)
        for _ in range(min(index - state.window - 1, MAX_IDLE_WINDOWS)):
            _fold(state, 0, self.config.rate_spike.alpha)
        state.window, state.count = index, 0
        await self._save(state)

    async def _save(self, state: _Principal) -> None:
        body = orjson.dumps(
            {
                "window": state.window,
                "mean": state.mean,
                "var": state.var,
                "windows": state.windows,
                "size_mean": state.size_mean,
                "size_n": state.size_n,
            }
        )
        await self._store.set(f"{KEY_PREFIX}base:{state.key}", body, ttl=BASELINE_TTL_SECONDS)

    # -- the five checks ---------------------------------------------------------------------------------------

    def _check_rate(self, state: _Principal) -> tuple[str, dict[str, Any]] | None:
        rule = self.config.rate_spike
        if state.windows < rule.warmup_windows or state.count < rule.min_calls:
            return None
        threshold = state.mean + rule.k * math.sqrt(max(state.var, 0.0))
        if state.count <= threshold:
            return None
        detail = {
            "calls": state.count,
            "window_seconds": self.config.window_seconds,
            "baseline_mean": round(state.mean, 2),
            "threshold": round(threshold, 2),
        }
        return RATE_SPIKE, detail

    async def _first_use(self, state: _Principal, event: _Event, tool: str) -> bool:
        """Record that the principal used `tool`; True when that is news worth an alert (past the warm-up)."""
        memory = self.config.new_tool.memory_seconds
        tool_key = hashlib.sha256(tool.encode()).hexdigest()[:24]
        fresh = await self._store.set(
            f"{KEY_PREFIX}tool:{state.key}:{tool_key}", b"1", ttl=memory, only_if_absent=True
        )
        if len(state.tools) < MAX_TOOLS_CACHED:
            state.tools.add(tool)
        return fresh and event.now - state.first_seen >= self.config.new_tool.warmup_seconds

    def _check_burst(self, state: _Principal, event: _Event) -> tuple[str, dict[str, Any]] | None:
        """Called for a denial or an exchange with findings."""
        rule = self.config.burst
        bursts = state.bursts
        bursts.append((event.now, event.denied, event.findings))
        while bursts and bursts[0][0] <= event.now - rule.window_seconds:
            bursts.popleft()
        if len(bursts) < rule.threshold:
            return None
        detail = {
            "denials": sum(1 for _, denied, _ in bursts if denied),
            "findings": sum(n for _, _, n in bursts),
            "window_seconds": rule.window_seconds,
        }
        return DENIAL_BURST, detail

    def _check_size(self, state: _Principal, event: _Event) -> tuple[str, dict[str, Any]] | None:
        rule = self.config.large_result
        size = event.size
        trusted = state.size_n >= rule.warmup_results
        usual = state.size_mean
        state.size_mean = size if state.size_n == 0 else usual + SIZE_ALPHA * (size - usual)
        state.size_n += 1
        if size < rule.min_bytes or (trusted and size < rule.factor * usual):
            return None
        detail = {
            "bytes": size,
            "usual_bytes": round(usual) if trusted else None,
            "server": event.server or "",
        }
        return LARGE_RESULT, detail

    def _check_recon(self, state: _Principal, event: _Event) -> tuple[str, dict[str, Any]] | None:
        rule = self.config.recon
        assert event.server is not None
        servers = state.servers
        servers[event.server] = event.now
        if len(servers) < rule.servers:
            return None
        horizon = event.now - rule.window_seconds
        for name in [n for n, seen in servers.items() if seen <= horizon]:
            del servers[name]
        if len(servers) < rule.servers:
            return None
        return RECON, {"servers": sorted(servers), "window_seconds": rule.window_seconds}

    # -- alerts ------------------------------------------------------------------------------------------------

    async def _raise(self, state: _Principal, event: _Event, kind: str, detail: dict[str, Any]) -> None:
        cooldown = self.config.cooldown_seconds
        last = state.alerted.get(kind)
        if last is not None and event.now - last < cooldown:
            return  # this replica already alerted: no store round trip
        if not await self._claim(f"{KEY_PREFIX}alert:{state.key}:{kind}", event.now, cooldown):
            state.alerted[kind] = event.now
            return
        state.alerted[kind] = event.now
        self.raised += 1
        notice = Notice(
            kind=NoticeKind.ALERT,
            severity=SEVERITY[kind],
            principal=event.principal.name,
            roles=tuple(sorted(event.principal.roles)),
            session_id=event.session_id,
            server=event.server or "",
            detail={"alert": kind, **detail},
            time=event.now,
        )
        logger.warning("anomaly alert %s for principal %s", kind, event.principal.name)
        await self._emit(notice)
        if self.webhook is not None:
            self.webhook.send(notice)

    async def _claim(self, key: str, now: float, cooldown: float) -> bool:
        """True when this replica may raise the alert: no other alert of its kind within the cool-down."""
        stamp = repr(now).encode()
        if await self._store.set(key, stamp, ttl=cooldown, only_if_absent=True):
            return True
        last = _number(await self._store.get(key), None)
        if last is not None and now - last < cooldown:
            return False
        await self._store.set(key, stamp, ttl=cooldown)  # the stored claim is older than the cool-down
        return True


def _fold(state: _Principal, count: int, alpha: float) -> None:
    """Add one closed window's count to the exponentially weighted mean and variance."""
    if state.windows == 0:
        state.mean, state.var = float(count), 0.0
    else:
        diff = count - state.mean
        step = alpha * diff
        state.mean += step
        state.var = (1 - alpha) * (state.var + diff * step)
    state.windows += 1


def _number(raw: bytes | None, default: float | None) -> Any:
    if raw is None:
        return default
    try:
        return float(raw)
    except ValueError:
        return default


def _restore(state: _Principal, raw: bytes) -> None:
    try:
        saved = orjson.loads(raw)
        state.window = int(saved["window"])
        state.mean = float(saved["mean"])
        state.var = float(saved["var"])
        state.windows = int(saved["windows"])
        state.size_mean = float(saved.get("size_mean", 0.0))
        state.size_n = int(saved.get("size_n", 0))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        logger.warning("ignoring an unreadable anomaly baseline")


def result_size(result: dict[str, Any]) -> int:
    """Estimated bytes of a result: the text, data and blob strings of its content items (cheap: no serialising).

    Structured content usually repeats the text, so it is not counted; a result with neither counts as small.
    """
    total = 0
    content = result.get("content")
    if isinstance(content, list):
        for item in content:
            if not isinstance(item, dict):
                continue
            for key in ("text", "data", "blob"):
                value = item.get(key)
                if isinstance(value, str):
                    total += len(value)
            resource = item.get("resource")
            if isinstance(resource, dict):
                for key in ("text", "blob"):
                    value = resource.get(key)
                    if isinstance(value, str):
                        total += len(value)
    contents = result.get("contents")  # resources/read
    if isinstance(contents, list):
        for item in contents:
            if isinstance(item, dict):
                for key in ("text", "blob"):
                    value = item.get(key)
                    if isinstance(value, str):
                        total += len(value)
    return total
