"""`RateLimiter`: token buckets and concurrency caps from the policy, kept in the `StateStore`.

Rules:
- Each matching limit is checked in config order; the first one over its limit refuses the call with the
  seconds until a retry can succeed. Slots already taken for earlier limits are given back.
- Bucket keys are `rl:<limit id>:<per>:<value>`, so a renamed limit starts fresh and replicas on one Redis
  share every bucket.
- Concurrency slots are leases: returned by `release()` when the call finishes, and expiring on their own
  after `lease_seconds` if a replica dies mid-call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Protocol

import anyio

from bastion.errors import RateLimited
from bastion.policy.config import RateLimitConfig
from bastion.state.base import BucketStore, LeaseStore


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """A held concurrency slot, to be released when the call finishes."""

    key: str
    lease: str


def _any(value: str, globs: Iterable[str]) -> bool:
    return any(fnmatchcase(value, g) for g in globs)


def applies(
    limit: RateLimitConfig, *, principal: str, roles: frozenset[str], server: str, tool: str | None
) -> bool:
    """Whether a limit covers this call (`tool` is the namespaced name, None for non-tool calls)."""
    if not _any(principal, limit.principals) or not _any(server, limit.servers):
        return False
    if limit.roles and not roles.intersection(limit.roles):
        return False
    return not limit.tools or (tool is not None and _any(tool, limit.tools))


def bucket_keys(
    limit: RateLimitConfig, *, principal: str, roles: frozenset[str], server: str, tool: str | None
) -> list[str]:
    """The buckets one call draws from under `limit` (one per matching role for `per: role`)."""
    base = f"rl:{limit.id}:{limit.per}:"
    if limit.per == "principal":
        return [base + principal]
    if limit.per == "server":
        return [base + server]
    if limit.per == "tool":
        return [base + (tool or server)]
    if limit.per == "role":
        chosen = sorted(roles.intersection(limit.roles) if limit.roles else roles)
        return [base + role for role in chosen]
    return [base + "*"]


class LimitStore(BucketStore, LeaseStore, Protocol):
    """What rate limits need of shared state: token buckets and concurrency leases."""


class RateLimiter:
    """Admits or refuses calls against a list of limits."""

    def __init__(self, store: LimitStore, *, lease_seconds: float = 600.0) -> None:
        self._store = store
        self._lease_seconds = lease_seconds

    async def admit(
        self,
        limits: Iterable[RateLimitConfig],
        *,
        principal: str,
        roles: frozenset[str],
        server: str,
        tool: str | None,
    ) -> tuple[list[Lease], str]:
        """Take a token from every matching bucket and a slot from every matching cap.

        Returns:
            The leases to release when the call ends, and a short note for audit.

        Raises:
            RateLimited: `data["retryAfter"]` is whole seconds until a retry can succeed.
        """
        leases: list[Lease] = []
        applied: list[str] = []
        try:
            for limit in limits:
                if not applies(limit, principal=principal, roles=roles, server=server, tool=tool):
                    continue
                applied.append(limit.id)
                for key in bucket_keys(limit, principal=principal, roles=roles, server=server, tool=tool):
                    if limit.calls is not None:
                        result = await self._store.take_tokens(
                            key, capacity=limit.calls, refill_per_second=limit.calls / limit.window_seconds
                        )
                        if not result.allowed:
                            raise _limited(limit.id, "calls", result.retry_after)
                    if limit.concurrent is not None:
                        lease = await self._store.acquire_lease(
                            key + ":inflight", limit=limit.concurrent, ttl=self._lease_seconds
                        )
                        if lease is None:
                            raise _limited(limit.id, "concurrent", 1.0)
                        leases.append(Lease(key=key + ":inflight", lease=lease))
        except BaseException:
            with anyio.CancelScope(shield=True):  # give slots back even when the caller was cancelled
                await self.release(leases)
            raise
        return leases, ", ".join(applied)

    async def release(self, leases: Iterable[Lease]) -> None:
        """Give held slots back."""
        for lease in leases:
            await self._store.release_lease(lease.key, lease.lease)


def _limited(limit_id: str, kind: str, retry_after: float) -> RateLimited:
    seconds = max(1, math.ceil(retry_after))
    return RateLimited(
        "Rate limit exceeded, retry later", data={"retryAfter": seconds, "limit": limit_id, "kind": kind}
    )
