"""Stores the audit commands cannot reach: one clear line naming what, never a credential.

Why: `bastion audit verify` is what an auditor runs, often from another host; a Redis or PostgreSQL that is down
or firewalled must read as "cannot reach X", not as a traceback, and not as a broken chain (a different exit
code, see `cli.py`). The line names the store by kind, name and address with the user, password and query
string of its URL left out, and a password that a driver echoes is blanked too.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Final
from urllib.parse import urlsplit

MAX_REASON: Final = 200
"""Longest driver message kept in the line (the first line of it)."""


class StoreUnreachable(Exception):
    """A store a command needs could not be reached; the message is safe to print."""


def safe_location(url: str) -> str:
    """`scheme://host:port/path` of a store URL: no user, password, query or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unparsable URL)"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _connection_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "could not talk to the store": sockets, and the Redis and PostgreSQL clients'
    own errors when those clients are loaded (a client not imported raised nothing; importing it costs)."""
    errors: list[type[BaseException]] = [OSError]
    redis_errors = sys.modules.get("redis.exceptions")
    if redis_errors is not None:
        errors.append(redis_errors.RedisError)
    asyncpg = sys.modules.get("asyncpg")
    if asyncpg is not None:
        errors += [asyncpg.PostgresError, asyncpg.InterfaceError]
    return tuple(errors)


def _reason(exc: BaseException, url: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    with contextlib.suppress(ValueError):
        secret = urlsplit(url).password
        if secret:
            text = text.replace(secret, "***")
    return text[:MAX_REASON]


@contextlib.asynccontextmanager
async def reaching(what: str, url: str = "") -> AsyncIterator[None]:
    """Turn a connection failure inside the block into `StoreUnreachable("cannot reach <what>: <reason>")`.

    Args:
        what: The store, as the operator knows it (`the state store (redis://host:6379/0)`).
        url: Its URL, only to blank a password that a driver message might echo.
    """
    try:
        yield
    except _connection_errors() as exc:
        raise StoreUnreachable(f"cannot reach {what}: {_reason(exc, url)}") from exc
