"""Keeping the Hyperscan compiler's memory out of the gateway process.

Compiling the guard's rule sets in process leaves the compiler's code pages and its fragmented heap (tens of MB of
small blocks, freed but kept by glibc) resident for the life of a long-lived process, although only the databases
(a few MB) and the scan code are needed. So a child Python compiles each database and prints it serialized
(`hyperscan.dumpb`); the gateway loads those bytes (`hyperscan.loadb`): the same database an in-process compile
makes. When no child can do it, the caller compiles in process and `release_freed_heap()` returns what glibc can.

Compiling the full rule set takes seconds, and every `bastion serve` (and every replica, and every test gateway)
would pay them at start. So each serialized database is also kept on disk, named by a hash of the Hyperscan
version and the exact job (expressions, ids, flags): a start with the same rules loads it in milliseconds. The cache
directory is private to the user (mode 0700, like the virtual environment that holds the code itself); an entry
that does not load is recompiled and replaced. `BASTION_HS_CACHE` names the directory; `off` disables the cache.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Final

logger = logging.getLogger("bastion.guard.matcher")

_CHILD_COMPILE: Final = """
import json, sys
import hyperscan as hs
job = json.load(sys.stdin)
db = hs.Database(mode=hs.HS_MODE_BLOCK)
try:
    db.compile(expressions=[e.encode("latin-1") for e in job["expressions"]], ids=job["ids"],
               elements=len(job["ids"]), flags=job["flags"])
except hs.error as exc:
    sys.stderr.write(str(exc))
    sys.exit(3)
sys.stdout.buffer.write(hs.dumpb(db))
"""
"""Run by `python -I -c`: compile the job read from stdin, print the serialized database (exit 3: refused)."""

_CHILD_TIMEOUT: Final = 300.0
_CHILDREN: Final = threading.BoundedSemaphore(max(1, min(4, os.cpu_count() or 1)))
"""Compiles running at once: each child holds a compiler's memory (hundreds of MB for the largest sets)."""


def compile_in_child(entries: list[tuple[int, bytes, int]]) -> Any | None:
    """A block-mode database of `(id, expression, flags)` entries compiled by a child Python, loaded here.

    Returns `None` when no child could do it (no interpreter, a crash, a timeout): the caller compiles in process.

    Raises:
        hyperscan.error: the compiler refused an expression (the caller retries rule by rule, in process).
    """
    import hyperscan as hs

    if not sys.executable or not entries:
        return None
    job = {
        "expressions": [e[1].decode("latin-1") for e in entries],
        "ids": [e[0] for e in entries],
        "flags": [e[2] for e in entries],
    }
    encoded = json.dumps(job).encode()
    cached = _cache_path(hs, encoded)
    if cached is not None:
        try:
            return hs.loadb(cached.read_bytes(), hs.HS_MODE_BLOCK)
        except (OSError, hs.error):
            pass  # absent or unreadable: compiled below and written again
    try:
        with _CHILDREN:
            done = subprocess.run(
                [sys.executable, "-I", "-c", _CHILD_COMPILE],
                input=encoded,
                capture_output=True,
                timeout=_CHILD_TIMEOUT,
                check=False,
            )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("hyperscan child compile unavailable (%s); compiling in process", type(exc).__name__)
        return None
    if done.returncode == 3:
        raise hs.error(done.stderr.decode("utf-8", "replace"))
    if done.returncode != 0 or not done.stdout:
        logger.debug("hyperscan child compile exited %s; compiling in process", done.returncode)
        return None
    try:
        db = hs.loadb(done.stdout, hs.HS_MODE_BLOCK)
    except hs.error:
        logger.debug("hyperscan child database did not load; compiling in process")
        return None
    if cached is not None:
        _store(cached, done.stdout)
    return db


def _cache_dir() -> Path | None:
    configured = os.environ.get("BASTION_HS_CACHE", "")
    if configured.lower() == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "bastion" / "hyperscan"


def _cache_path(hs: Any, job: bytes) -> Path | None:
    """Where the database of `job` is kept, or None when there is no usable cache directory."""
    folder = _cache_dir()
    if folder is None:
        return None
    version = getattr(hs, "__version__", "") + str(getattr(hs, "HS_MAJOR", ""))
    digest = hashlib.sha256(version.encode() + b"\0" + job).hexdigest()
    return folder / f"{digest}.hsdb"


def _store(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (a concurrent start reads the old file or the new one, never half)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        logger.debug("hyperscan cache not written (%s)", type(exc).__name__)


def release_freed_heap() -> None:
    """Hand the heap an in-process compile freed back to the OS (glibc only; elsewhere a no-op).

    The compiler's freed blocks lie between live ones, so glibc keeps their pages resident (about 10 MB of RSS per
    database); `malloc_trim` returns them. Cheap, and harmless when the compile ran in a child.
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)
