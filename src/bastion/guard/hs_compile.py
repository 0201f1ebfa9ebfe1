"""Keeping the Hyperscan compiler's memory out of the gateway process.

Compiling the guard's rule sets in process leaves the compiler's code pages and its fragmented heap (tens of MB of
small blocks, freed but kept by glibc) resident for the life of a long-lived process, although only the databases
(a few MB) and the scan code are needed. So a child Python compiles each database and prints it serialized
(`hyperscan.dumpb`); the gateway loads those bytes (`hyperscan.loadb`): the same database an in-process compile
makes. When no child can do it, the caller compiles in process and `release_freed_heap()` returns what glibc can.
"""

from __future__ import annotations

import ctypes
import json
import logging
import subprocess
import sys
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
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", _CHILD_COMPILE],
            input=json.dumps(job).encode(),
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
        return hs.loadb(done.stdout, hs.HS_MODE_BLOCK)
    except hs.error:
        logger.debug("hyperscan child database did not load; compiling in process")
        return None


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
