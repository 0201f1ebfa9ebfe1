"""stdio on both sides: spawn an upstream server as a child process, or serve a client on our own stdin/stdout.

Rules (MCP stdio framing, both eras):
- One UTF-8 JSON-RPC message per line; no embedded newlines (orjson never emits them).
- Only MCP messages on stdout; the child's stderr is free-form logging and goes to our log, never parsed.
- Lines longer than `max_line_bytes` are dropped with a log line (an upstream flooding garbage cannot grow memory).
- Shutdown of a child: close stdin, wait, SIGTERM the process group, wait, SIGKILL. No zombies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Final

import orjson

from bastion.errors import BastionError, UpstreamUnavailable
from bastion.protocol import jsonrpc
from bastion.transports.base import Incoming, JsonDict, RequestId, TransportClosed

logger = logging.getLogger("bastion.transports.stdio")

MAX_LINE_BYTES: Final = 16 * 1024 * 1024
"""Bytes; the longest line accepted from a child or from our stdin."""
TERMINATE_GRACE_SECONDS: Final = 2.0
"""Seconds to wait after closing stdin, and again after SIGTERM, before escalating."""

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
    ) -> None:
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
        with contextlib.suppress(Exception):
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
        async for message in read_messages(process.stdout, source=self._name):
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
                with contextlib.suppress(Exception):
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
        await asyncio.wait_for(process.wait(), seconds)
    except TimeoutError:
        return False
    return True


def _signal_group(process: asyncio.subprocess.Process, sig: signal.Signals) -> None:
    # The child leads its own session (start_new_session), so the whole tree (npx -> node) gets the signal.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


async def read_messages(
    stream: asyncio.StreamReader, *, source: str, on_invalid: Any = None
) -> AsyncIterator[JsonDict]:
    """Yield parsed JSON-RPC messages from a newline-delimited stream; garbage lines are logged and skipped.

    Args:
        stream: The reader (a child's stdout, or our stdin).
        source: Name used in log lines.
        on_invalid: Optional async callback `(error: BastionError) -> None` for lines that are not JSON-RPC.
    """
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # line longer than the reader's limit: skip to the next newline
            logger.warning("%s: dropped an over-long line", source)
            with contextlib.suppress(Exception):
                await stream.readuntil(b"\n")
            continue
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        if not line:
            return
        line = line.strip()
        if not line:
            continue
        try:
            message = jsonrpc.loads(line)
            jsonrpc.classify(message)
        except BastionError as exc:
            logger.warning("%s: ignored a line that is not a JSON-RPC message (%s)", source, exc.reason)
            if on_invalid is not None:
                await on_invalid(exc)
            continue
        yield message


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


async def open_stdio_streams() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Wrap this process's stdin/stdout as asyncio streams (for `bastion stdio`)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, sys.stdout)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer
