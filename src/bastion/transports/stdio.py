"""stdio on both sides: spawn an upstream server as a child process, or serve a client on our own stdin/stdout.

Rules (MCP stdio framing, both eras):
- One UTF-8 JSON-RPC message per line; no embedded newlines (orjson never emits them).
- Only MCP messages on stdout; the child's stderr is free-form logging and goes to our log, never parsed.
- Lines longer than `max_line_bytes` are skipped to their end without being buffered whole, and reported like any
  other line that is not JSON-RPC (`on_invalid`); the next line is read normally. Memory stays bounded by the
  limit whatever a peer writes, and log lines about bad input are throttled.
- Shutdown of a child: close stdin, wait, SIGTERM the process group, wait, SIGKILL. No zombies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

import orjson

from bastion.errors import BastionError, PayloadTooLarge, UpstreamUnavailable
from bastion.protocol import jsonrpc
from bastion.transports.base import Incoming, TransportClosed
from bastion.types import JsonDict, RequestId

logger = logging.getLogger("bastion.transports.stdio")

MAX_LINE_BYTES: Final = 16 * 1024 * 1024
"""Bytes; the longest line accepted from a child or from our stdin."""
TERMINATE_GRACE_SECONDS: Final = 2.0
"""Seconds to wait after closing stdin, and again after SIGTERM, before escalating."""
LOGGED_INVALID_LINES: Final = 10
"""Invalid lines logged one by one per stream; after that only every 1000th is (a flood cannot flood the log)."""

InvalidHook = Callable[[BastionError], Awaitable[None]]
"""Told about each line that is not a JSON-RPC message (the error says why: parse, shape, too large)."""

_DEFAULT_ENV_KEYS: Final = (
    "HOME",
    "LOGNAME",
    "PATH",
    "SHELL",
    "TERM",
    "USER",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "NODE_OPTIONS",
    "NODE_PATH",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "SYSTEMROOT",
)
"""Environment inherited by a child server; everything else must be configured (no credential leaks)."""


def default_environment() -> dict[str, str]:
    """The minimal environment a child server inherits (like the MCP SDK's `get_default_environment`)."""
    return {k: v for k, v in os.environ.items() if k in _DEFAULT_ENV_KEYS and not v.startswith("()")}


class StdioClientTransport:
    """Runs one upstream MCP server as a child process and talks to it over its stdin/stdout."""

    def __init__(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        name: str = "stdio",
        max_line_bytes: int = MAX_LINE_BYTES,
        on_invalid: InvalidHook | None = None,
    ) -> None:
        self._on_invalid = on_invalid
        self._command = command
        self._args = list(args)
        self._env = {**default_environment(), **(env or {})}
        self._cwd = cwd
        self._name = name
        self._max_line = max_line_bytes
        self._process: asyncio.subprocess.Process | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._write_lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self._process else None

    async def start(self) -> None:
        try:
            self._process = await asyncio.create_subprocess_exec(
                self._command,
                *self._args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env,
                cwd=self._cwd,
                limit=self._max_line,
                start_new_session=True,
            )
        except OSError as exc:
            raise UpstreamUnavailable(
                f"cannot start server {self._name}: {exc.strerror or type(exc).__name__}",
                data={"server": self._name},
            ) from exc
        assert self._process.stderr is not None
        self._stderr_task = asyncio.create_task(self._drain_stderr(self._process.stderr))

    async def _drain_stderr(self, stream: asyncio.StreamReader) -> None:
        # A full stderr pipe blocks the child, so it is always drained; lines go to our log as the child's.
        child_log = logging.getLogger(f"bastion.upstream.{self._name}.stderr")
        with contextlib.suppress(OSError, ValueError):  # the pipe broke, or a line overran the reader's limit
            while line := await stream.readline():
                child_log.info("%s", line.decode("utf-8", "replace").rstrip()[:2000])

    def set_protocol_version(self, version: str) -> None:
        """Nothing to do on stdio: the version lives in the messages."""

    async def send(self, message: JsonDict) -> None:
        process = self._process
        if process is None or process.stdin is None or process.returncode is not None:
            raise TransportClosed(f"server {self._name} is not running", data={"server": self._name})
        data = jsonrpc.dumps(message) + b"\n"
        async with self._write_lock:
            try:
                process.stdin.write(data)
                await process.stdin.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise TransportClosed(
                    f"server {self._name} closed its input", data={"server": self._name}
                ) from exc

    async def receive(self) -> AsyncIterator[Incoming]:
        process = self._process
        if process is None or process.stdout is None:
            return
        async for message in read_messages(process.stdout, source=self._name, on_invalid=self._on_invalid):
            yield Incoming(message)

    @property
    def returncode(self) -> int | None:
        """Exit status once the child has exited."""
        return self._process.returncode if self._process else None

    async def aclose(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.returncode is None:
            if process.stdin is not None:
                with contextlib.suppress(OSError, RuntimeError):  # the pipe is already broken or closed
                    process.stdin.close()
            if not await _wait(process, TERMINATE_GRACE_SECONDS):
                _signal_group(process, signal.SIGTERM)
                if not await _wait(process, TERMINATE_GRACE_SECONDS):
                    _signal_group(process, signal.SIGKILL)
                    await _wait(process, TERMINATE_GRACE_SECONDS)
        if self._stderr_task is not None:
            self._stderr_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task


async def _wait(process: asyncio.subprocess.Process, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            await process.wait()
    except TimeoutError:
        return False
    return True


def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    # The child leads its own session (start_new_session), so the whole tree (npx -> node) gets the signal.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


async def read_messages(
    stream: asyncio.StreamReader,
    *,
    source: str,
    on_invalid: InvalidHook | None = None,
    max_depth: int = jsonrpc.DEFAULT_MAX_DEPTH,
) -> AsyncIterator[JsonDict]:
    """Yield parsed JSON-RPC messages from a newline-delimited stream; bad lines are reported and skipped.

    Args:
        stream: The reader (a child's stdout, or our stdin); its `limit` is the longest line accepted.
        source: Name used in log lines.
        on_invalid: Told about each line that is not a JSON-RPC message (not JSON, not UTF-8, too deep, too long).
        max_depth: Nesting levels allowed in one message.
    """
    invalid = 0
    skipping = False  # inside an over-long line: what comes up to its newline is its tail
    while True:
        try:
            line = await stream.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            line = exc.partial  # EOF: a last line without its newline (a peer that died mid-message)
            if not line or skipping:
                return
        except asyncio.LimitOverrunError as exc:
            # Discard what is buffered, never more than the limit at a time; the rest of the line follows.
            await stream.readexactly(exc.consumed)
            if not skipping:
                skipping = True
                error: BastionError = PayloadTooLarge("line over the size limit")
                invalid = await _report(source, error, invalid, on_invalid)
            continue
        except ConnectionError:
            return
        if skipping:
            skipping = False
            continue
        line = line.strip()
        if not line:
            continue
        # No more brackets than levels allowed (counted in C): the depth walk over the parsed value can be skipped.
        depth = 0 if line.count(b"{") + line.count(b"[") <= max_depth else max_depth
        try:
            message = jsonrpc.loads(line, max_depth=depth)
            jsonrpc.classify(message)
        except BastionError as exc:
            invalid = await _report(source, exc, invalid, on_invalid)
            continue
        yield message


async def _report(source: str, exc: BastionError, seen: int, on_invalid: InvalidHook | None) -> int:
    seen += 1
    if seen <= LOGGED_INVALID_LINES or seen % 1000 == 0:
        logger.warning(
            "%s: ignored a line that is not a JSON-RPC message (%s; %d so far)", source, exc.reason, seen
        )
    if on_invalid is not None:
        await on_invalid(exc)
    return seen


class StdioServerOutbound:
    """`Outbound` for `bastion stdio`: every message to the client is one line on our stdout."""

    def __init__(self, writer: asyncio.StreamWriter | Any) -> None:
        self._writer = writer
        self._lock = asyncio.Lock()

    async def send(self, message: JsonDict, related: RequestId | None) -> None:
        data = orjson.dumps(message) + b"\n"
        async with self._lock:
            self._writer.write(data)
            await self._writer.drain()


async def open_stdio_streams(
    max_line_bytes: int = MAX_LINE_BYTES,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Wrap this process's stdin/stdout as asyncio streams (for `bastion stdio`); lines are capped at the limit."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=max_line_bytes)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer
