"""`AlertWebhook`: POSTs alerts as JSON to an operator's endpoint, in the background, best effort.

Rules:
- `send()` never waits on the network: it starts a task and returns. At most `max_pending` deliveries are in flight;
  beyond that an alert is dropped (and logged), never queued without bound.
- One attempt per alert with a bounded timeout and no redirects; a failure is logged by status or error type only.
- The body holds the notice's non-secret facts; configured headers (a receiver's shared secret) go in headers only.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from bastion.core.tasks import BackgroundTasks
from bastion.pipeline.notice import Notice
from bastion.telemetry.config import WebhookConfig

logger = logging.getLogger("bastion.telemetry")


def alert_body(notice: Notice) -> dict[str, Any]:
    """The JSON document sent for one alert notice."""
    return {
        "id": notice.notice_id,
        "time": notice.time,
        "kind": str(notice.kind),
        "alert": notice.detail.get("alert", ""),
        "severity": notice.severity,
        "principal": notice.principal,
        "server": notice.server,
        "detail": notice.detail,
    }


class AlertWebhook:
    """Delivers alert notices to one URL."""

    def __init__(self, config: WebhookConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._client = client
        self._owns_client = client is None
        self._tasks = BackgroundTasks()
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def send(self, notice: Notice) -> None:
        """Start delivering `notice`; returns at once."""
        if len(self._tasks) >= self.config.max_pending:
            self.dropped += 1
            logger.warning(
                "alert webhook: %d deliveries pending, alert %s dropped", len(self._tasks), notice.notice_id
            )
            return
        self._tasks.spawn(self._deliver(notice))

    async def _deliver(self, notice: Notice) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        try:
            response = await self._client.post(
                self.config.url,
                json=alert_body(notice),
                headers=headers,
                timeout=httpx.Timeout(self.config.timeout_seconds),
            )
        except httpx.HTTPError as exc:
            self.failed += 1
            logger.warning("alert webhook failed: %s", type(exc).__name__)
            return
        if response.is_success:
            self.delivered += 1
        else:
            self.failed += 1
            logger.warning("alert webhook answered HTTP %d", response.status_code)

    async def flush(self) -> None:
        """Wait for the deliveries in flight (each is bounded by the timeout)."""
        while self._tasks:
            await self._tasks.drain()

    async def aclose(self) -> None:
        """Finish pending deliveries, then close the HTTP client."""
        await self.flush()
        if self._client is not None and self._owns_client:
            await self._client.aclose()
        self._client = None
