"""The services a cluster test needs (Redis, PostgreSQL, nginx): found, started when they can be, or skipped.

PostgreSQL and Redis normally run on the machine (127.0.0.1:6379, localhost:5432 trust auth as `postgres`). When they
do not, the commands of the machine notes (/work/.library/env/machines/python-svc.md) are tried once; when that fails
too, the tests skip with the reason. nginx comes from Debian (`scripts/setup-system.sh`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import redis

REDIS_URL = "redis://127.0.0.1:6379/0"
PG_ADMIN_URL = "postgresql://postgres@localhost:5432/postgres"
PG_URL_TEMPLATE = "postgresql://postgres@localhost:5432/{name}"
_REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def _listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _try(command: list[str]) -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(command, check=False, capture_output=True, timeout=60)


def redis_problem() -> str | None:
    """None when Redis answers (after trying to start it), else why not."""
    if not _listening(6379) and shutil.which("redis-server"):
        _try(_REDIS_START)
    try:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return f"Redis is not reachable at {REDIS_URL} ({type(exc).__name__})"
    return None


def postgres_problem() -> str | None:
    """None when PostgreSQL accepts the `postgres` user (after trying to start it), else why not."""
    if not _listening(5432) and Path("/etc/postgresql").is_dir():
        for version in sorted(p.name for p in Path("/etc/postgresql").iterdir()):
            _try(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"])

    async def probe() -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
        await conn.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL is not reachable at localhost:5432 as postgres ({type(exc).__name__})"
    return None


def nginx_binary() -> str | None:
    """Debian's nginx, installed by scripts/setup-system.sh."""
    for candidate in ("/usr/sbin/nginx", shutil.which("nginx")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def cluster_problem() -> str | None:
    """Why a cluster test cannot run here, or None."""
    if nginx_binary() is None:
        return "nginx is not installed (run scripts/setup-system.sh)"
    return redis_problem() or postgres_problem()


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """A PostgreSQL database with a random name, dropped (connections and all) afterwards; yields its URL."""
    name = f"bastion_cluster_{secrets.token_hex(6)}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE DATABASE {name}"))
    try:
        yield PG_URL_TEMPLATE.format(name=name)
    finally:
        asyncio.run(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@contextlib.contextmanager
def redis_prefix() -> Iterator[str]:
    """A random key prefix; every key under it is deleted afterwards."""
    prefix = f"bastion-cluster-{secrets.token_hex(6)}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        finally:
            client.close()
