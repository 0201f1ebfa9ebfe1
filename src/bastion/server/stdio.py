"""`bastion stdio`: one MCP client on this process's own stdin/stdout, served until EOF or SIGTERM.

Rules:
- One JSON-RPC message per line (MCP stdio framing). A line is capped at `limits.max_body_bytes` and nesting at
  `limits.max_depth`, as on HTTP; an over-long line is skipped without being buffered whole.
- A line that is not a JSON-RPC message (not JSON, not UTF-8, too deep, too long, the wrong shape) is answered
  with a JSON-RPC error whose id is null (nothing in that line can be trusted), logged, and emitted as a
  `PROTOCOL_ERROR` notice; reading goes on. Unknown methods, requests before `initialize` and responses to ids
  nobody asked are the session's business (-32601, -32600, ignored).
- EOF on stdin: the client is gone. Its calls in flight are cancelled (upstreams get `notifications/cancelled`)
  and the gateway closes.
- SIGTERM or SIGINT: stop reading; calls in flight get `limits.shutdown_grace_seconds` to finish, and their
  responses are still written; then the rest are cancelled and the gateway closes: audit flushed, upstream
  connections closed, child processes terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bastion.errors import BastionError, error_response
from bastion.pipeline.notice import NoticeKind
from bastion.transports.stdio import StdioServerOutbound, open_stdio_streams, read_messages

if TYPE_CHECKING:
    from bastion.auth.principal import Principal
    from bastion.core.gateway import Gateway
    from bastion.core.session import DownstreamSession
    from bastion.transports.base import Outbound

logger = logging.getLogger("bastion.server.stdio")

EOF: str = "eof"
SIGNAL: str = "signal"


async def serve_stdio(
    gateway: Gateway,
    session: DownstreamSession,
    reader: asyncio.StreamReader,
    outbound: Outbound,
    *,
    stop: asyncio.Event,
) -> str:
    """Feed `session` from `reader` until EOF or `stop`; after `stop`, drain calls in flight (bounded).

    The caller closes the session and the gateway afterwards (closing cancels whatever is still running).

    Returns:
        `EOF` when the client closed stdin, `SIGNAL` when `stop` was set.
    """
    limits = gateway.config.limits

    async def invalid(exc: BastionError) -> None:
        await outbound.send(error_response(None, exc), None)
        notice = gateway.session_notice(
            NoticeKind.PROTOCOL_ERROR, session, reason=str(exc.reason), source="client"
        )
        await gateway.emit(dataclasses.replace(notice, severity="warning"))

    async def pump() -> None:
        async for message in read_messages(
            reader, source="stdin", on_invalid=invalid, max_depth=limits.max_depth
        ):
            await session.handle(message)

    pump_task = asyncio.create_task(pump(), name="stdio-pump")
    stopped = asyncio.create_task(stop.wait(), name="stdio-stop")
    try:
        await asyncio.wait({pump_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if pump_task.done():
        if not pump_task.cancelled() and (exc := pump_task.exception()) is not None:
            logger.error("stdin reader failed: %s", type(exc).__name__)
        logger.info("stdin closed: cancelling calls in flight")
        return EOF
    pump_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await pump_task
    grace = limits.shutdown_grace_seconds
    session.end_listen()  # a long-lived subscription is not a call to wait for
    logger.info("shutting down: draining calls in flight for up to %gs", grace)
    if not await session.drain(grace):
        logger.warning("shutdown grace of %gs is over: cancelling the calls still in flight", grace)
    return SIGNAL


async def run_stdio(gateway: Gateway, principal_of: Callable[[], Principal]) -> int:
    """The `bastion stdio` command once the composition root built `gateway`: serve stdin/stdout as the
    principal `principal_of()` names (asked once the gateway started), shut down cleanly."""
    config = gateway.config
    reader, writer = await open_stdio_streams(config.limits.max_body_bytes)
    outbound = StdioServerOutbound(writer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    session: Any = None
    try:
        await gateway.start()
        principal = principal_of()
        session = await gateway.open_session(transport="stdio", outbound=outbound, principal=principal)
        await serve_stdio(gateway, session, reader, outbound, stop=stop)
    finally:
        if session is not None:
            await session.aclose()
        await gateway.aclose()
        with contextlib.suppress(OSError, RuntimeError):  # the client may have closed our stdout already
            writer.close()
    return 0
