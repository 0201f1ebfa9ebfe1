"""Build the client transport for an upstream from its config (the only place that knows every transport)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bastion.errors import BastionError
from bastion.transports.base import ClientTransport
from bastion.upstream.config import ServerConfig

if TYPE_CHECKING:
    import httpx


def transport_factory(
    name: str,
    config: ServerConfig,
    *,
    on_invalid: Callable[[BastionError], Awaitable[None]] | None = None,
    http_client: httpx.AsyncClient | None = None,
) -> Callable[[], ClientTransport]:
    """A zero-argument factory: supervision calls it again for every reconnect.

    Args:
        name: The server's name (log lines, errors).
        config: Its configuration.
        on_invalid: Told about each line of a stdio server's output that is not a JSON-RPC message.
        http_client: The pooled client every upstream session of an HTTP server shares (`isolation: session`).
    """
    if config.transport == "stdio":
        from bastion.transports.stdio import StdioClientTransport

        assert config.command is not None  # validated by the config model
        env = {k: v.get_secret_value() for k, v in config.env.items()}
        command, args = config.command, list(config.args)
        return lambda: StdioClientTransport(
            command, args, env=env, cwd=config.cwd, name=name, on_invalid=on_invalid
        )
    headers = {k: v.get_secret_value() for k, v in config.headers.items()}
    assert config.url is not None
    url = config.url
    if config.transport == "streamable-http":
        from bastion.transports.streamable_http_client import StreamableHttpClientTransport

        return lambda: StreamableHttpClientTransport(
            url, headers, timeout=config.timeout_seconds, name=name, client=http_client
        )
    from bastion.transports.sse_client import SseClientTransport

    return lambda: SseClientTransport(
        url, headers, timeout=config.timeout_seconds, name=name, client=http_client
    )
