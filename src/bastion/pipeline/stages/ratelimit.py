"""`RateLimitStage`: token buckets and concurrency caps per principal, role, server or tool.

Rules:
- Runs after authorization (a denied call must not spend the caller's budget) and before validation.
- Over a limit: `RateLimited` (-31002) with `data.retryAfter` in whole seconds.
- Concurrency slots are released when the exchange finishes: the stage is also an `ExchangeObserver`, and
  observers see every exchange, rejected, failed and cancelled ones included. Register it in both places.
- A store that fails (Redis down, timeout) raises, and the chain fails closed.
"""

from __future__ import annotations

from bastion.errors import RateLimited
from bastion.pipeline.exchange import Exchange
from bastion.pipeline.stage import BaseStage, FailureMode
from bastion.pipeline.verdicts import PASS, Reject, Verdict
from bastion.policy.holder import PolicyHolder
from bastion.policy.ratelimit import Lease, LimitStore, RateLimiter


class RateLimitStage(BaseStage):
    """Admits routed calls against the policy's `rate_limits`."""

    name = "ratelimit"
    failure_mode = FailureMode.CLOSED

    def __init__(self, policy: PolicyHolder, store: LimitStore) -> None:
        self.policy = policy
        self._limiter = RateLimiter(store, lease_seconds=policy.engine.config.lease_seconds)
        self._held: dict[str, list[Lease]] = {}

    @property
    def held(self) -> int:
        """Exchanges currently holding concurrency slots (for tests and metrics)."""
        return len(self._held)

    async def on_request(self, exchange: Exchange) -> Verdict:
        engine = self.policy.engine
        if exchange.server is None or not engine.config.rate_limits:
            return PASS
        principal = exchange.session.principal
        tool = f"{exchange.server}__{exchange.target}" if exchange.method == "tools/call" else None
        try:
            leases, applied = await self._limiter.admit(
                engine.rate_limits,
                principal=principal.name,
                roles=engine.roles_of(principal),
                server=exchange.server,
                tool=tool,
            )
        except RateLimited as exc:
            exchange.annotations[self.name] = dict(exc.data or {})
            limit = (exc.data or {}).get("limit", "")
            return Reject(error=exc, explanation=f"rate limit {limit} exceeded")
        if leases:
            self._held[exchange.exchange_id] = leases
        if applied:
            exchange.annotations[self.name] = {"limits": applied}
        return PASS

    async def on_response(self, exchange: Exchange) -> Verdict:
        await self._release(exchange)
        return PASS

    async def on_exchange(self, exchange: Exchange) -> None:
        """Observer hook: the exchange is finished, whatever its outcome."""
        await self._release(exchange)

    async def _release(self, exchange: Exchange) -> None:
        leases = self._held.pop(exchange.exchange_id, None)
        if leases:
            await self._limiter.release(leases)
