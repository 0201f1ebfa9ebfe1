"""`JsonlAuditSink`: one JSON object per line, appended and fsynced per batch, rotated by size.

Rules:
- Each line is `{"event": <content>, "hash", "prev_hash", "replica", "seq"}`; the content is re-serialised
  canonically on reading (orjson round-trips its own output byte for byte), so the chain verifies from files.
- A retried batch is not appended twice: the ids of the latest events written are remembered.
- Writers take an exclusive `flock` on `<path>.lock` for a batch: processes sharing the file keep one chain
  per replica. When the file changed under us (another writer, a rotation) the chain heads are re-read.
- A torn last line (a crash in the middle of a write) is cut off under the lock before the next append; it
  belonged to a batch that was never acknowledged.
- Rotation renames the active file to `<stem>.<NNNNNN><suffix>`; pruning deletes whole rotated files, oldest
  first, after writing prune anchors to `<stem>.anchors<suffix>`.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread
import orjson

from bastion.audit.chain import Anchor, ChainHead, StoredEvent, link
from bastion.audit.config import JsonlSinkConfig, sink_name
from bastion.audit.event import AuditEvent, canonical
from bastion.audit.signing import SigningKey
from bastion.audit.sinks.base import GROUP_BY, AuditQuery, EncodedEvent, group_value

T = TypeVar("T")
_Line = tuple[str, dict[str, Any]]
"""(position, parsed line)."""
RECENT_IDS: Final = 65_536
"""Event ids remembered for de-duplicating retries."""


def _stored(position: str, line: dict[str, Any]) -> StoredEvent:
    return StoredEvent(
        replica=str(line.get("replica", "")),
        seq=int(line.get("seq", 0)),
        prev_hash=str(line.get("prev_hash", "")),
        hash=str(line.get("hash", "")),
        content=canonical(line.get("event")),
        position=position,
    )


class JsonlAuditSink:
    """Audit events as JSON Lines files (for log shippers), also readable by `bastion audit`."""

    def __init__(self, config: JsonlSinkConfig | None = None, *, path: str | Path | None = None) -> None:
        config = config or JsonlSinkConfig(type="jsonl")
        self.name = sink_name(config)
        self.path = Path(path if path is not None else config.path)
        self._config = config
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._anchors_path = self.path.with_name(f"{self.path.stem}.anchors{self.path.suffix}")
        self._rotated_name = re.compile(rf"^{re.escape(self.path.stem)}\.(\d+){re.escape(self.path.suffix)}$")
        self._heads: dict[str, ChainHead] = {}
        self._recent: collections.OrderedDict[str, None] = collections.OrderedDict()
        """Ids of the latest events written, so a retried batch is not appended twice."""
        self._known: tuple[int, int] | None = None
        """(inode, size) of the active file right after our last write or scan."""
        self._opened = False
        self._write_limiter = anyio.CapacityLimiter(1)
        self._read_limiter = anyio.CapacityLimiter(1)

    async def open(self) -> None:
        if not self._opened:
            await anyio.to_thread.run_sync(self._open, limiter=self._write_limiter)
            self._opened = True

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._rescan()

    async def aclose(self) -> None:
        self._opened = False

    async def __aenter__(self) -> JsonlAuditSink:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _write_op(self, fn: Callable[..., T], *args: Any) -> T:
        await self.open()
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._write_limiter)

    async def _read_op(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._read_limiter)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._lock_path, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- files ------------------------------------------------------------------------------------------------

    def files(self) -> list[Path]:
        """Rotated files, oldest first, then the active file (if it exists)."""
        numbered = []
        for entry in self.path.parent.glob(f"{self.path.stem}.*{self.path.suffix}"):
            match = self._rotated_name.match(entry.name)
            if match:
                numbered.append((int(match.group(1)), entry))
        out = [p for _, p in sorted(numbered)]
        return [*out, self.path] if self.path.exists() else out

    @staticmethod
    def _lines(path: Path, offset: int = 0) -> Iterator[tuple[str, dict[str, Any], int]]:
        """(position, parsed line, offset after it) of complete lines; a torn last line is skipped."""
        try:
            with open(path, "rb") as f:
                f.seek(offset)
                number = 0
                for raw in f:
                    number += 1
                    offset += len(raw)
                    if not raw.endswith(b"\n"):
                        return
                    try:
                        parsed = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        parsed = {"_unparseable": True}
                    yield f"{path.name}:{number}", parsed if isinstance(parsed, dict) else {}, offset
        except FileNotFoundError:
            return

    def _file_lines(self, path: Path) -> list[tuple[str, dict[str, Any], int]]:
        return list(self._lines(path))

    def _all(self) -> list[_Line]:
        return [(pos, line) for path in self.files() for pos, line, _ in self._lines(path)]

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size

    def _rescan(self) -> None:
        """Re-read every chain head from the files (and anchors), cutting a torn last line first."""
        self._cut_torn_tail()
        self._heads = {}
        for anchor in self._read_anchors():
            if (
                anchor.kind == "prune"
                and anchor.seq >= self._heads.get(anchor.replica, ChainHead(replica="")).seq
            ):
                self._heads[anchor.replica] = ChainHead(
                    replica=anchor.replica, seq=anchor.seq, hash=anchor.hash
                )
        for _, line in self._all():
            self._advance(line)
        self._known = self._stat()

    def _advance(self, line: dict[str, Any]) -> None:
        replica, seq = str(line.get("replica", "")), int(line.get("seq", 0) or 0)
        self._remember([str((line.get("event") or {}).get("event_id", ""))])
        if replica and seq > self._heads.get(replica, ChainHead(replica=replica)).seq:
            self._heads[replica] = ChainHead(replica=replica, seq=seq, hash=str(line.get("hash", "")))

    def _remember(self, ids: list[str]) -> None:
        for event_id in ids:
            self._recent[event_id] = None
        while len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)

    def _cut_torn_tail(self) -> None:
        try:
            with open(self.path, "r+b") as f:
                size = f.seek(0, os.SEEK_END)
                if size == 0:
                    return
                f.seek(size - 1)
                if f.read(1) == b"\n":
                    return
                f.seek(max(0, size - 16 * 1024 * 1024))
                data = f.read()
                cut = data.rfind(b"\n") + 1 + (size - len(data))
                f.truncate(cut)
                os.fsync(f.fileno())
        except FileNotFoundError:
            return

    # -- writing ----------------------------------------------------------------------------------------------

    async def write(self, replica: str, events: Sequence[EncodedEvent]) -> ChainHead:
        return await self._write_op(self._write, replica, list(events))

    def _write(self, replica: str, events: list[EncodedEvent]) -> ChainHead:
        with self._locked():
            now = self._stat()
            if now != self._known:
                known = self._known
                if now is not None and known is not None and now[0] == known[0] and now[1] > known[1]:
                    for _, line, _ in self._lines(self.path, known[1]):  # another writer appended
                        self._advance(line)
                    self._known = now
                else:
                    self._rescan()
            events = [e for e in events if e.event_id not in self._recent]
            head = self._heads.get(replica, ChainHead(replica=replica))
            links = link(head, [e.content for e in events])
            rid = orjson.dumps(replica)
            data = b"".join(
                b'{"event":%s,"hash":"%s","prev_hash":"%s","replica":%s,"seq":%d}\n'
                % (e.content, digest.encode(), prev.encode(), rid, seq)
                for e, (seq, prev, digest) in zip(events, links, strict=True)
            )
            with open(self.path, "ab") as f:
                f.write(data)
                f.flush()
                if self._config.fsync:
                    os.fsync(f.fileno())
                size = f.tell()
            self._remember([e.event_id for e in events])
            if links:
                self._heads[replica] = head = ChainHead(replica=replica, seq=links[-1][0], hash=links[-1][2])
            self._known = self._stat()
            if size >= self._config.max_bytes:
                self._rotate()
            return head

    def _rotate(self) -> None:
        rotated = [p for p in self.files() if p != self.path]
        last = int(self._rotated_name.match(rotated[-1].name).group(1)) if rotated else 0  # type: ignore[union-attr]
        os.rename(self.path, self.path.with_name(f"{self.path.stem}.{last + 1:06d}{self.path.suffix}"))
        self._fsync_dir()
        self._known = None

    def _fsync_dir(self) -> None:
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def write_anchor(self, anchor: Anchor) -> None:
        await self._write_op(self._put_anchors, [anchor])

    def _put_anchors(self, anchors: list[Anchor]) -> None:
        with self._locked(), open(self._anchors_path, "ab") as f:
            f.write(b"".join(canonical(a.to_dict()) + b"\n" for a in anchors))
            f.flush()
            os.fsync(f.fileno())

    def _read_anchors(self) -> list[Anchor]:
        out = []
        for _, line, _ in self._lines(self._anchors_path):
            with contextlib.suppress(KeyError, TypeError, ValueError):
                out.append(Anchor.from_dict(line))
        return out

    async def prune(self, before: float, key: SigningKey | None = None) -> list[Anchor]:
        return await self._write_op(self._prune, before, key)

    def _prune(self, before: float, key: SigningKey | None) -> list[Anchor]:
        # Whole rotated files only, oldest first, stopping at the first file with a recent event: what stays
        # is a contiguous suffix of every chain. Anchors are durable before any file goes.
        doomed: list[Path] = []
        last: dict[str, tuple[int, str]] = {}
        with self._locked():
            files = self.files()
            for path in files[:-1] if self.path.exists() else files:
                lines = [line for _, line, _ in self._lines(path)]
                if any(float((line.get("event") or {}).get("time", 0)) >= before for line in lines):
                    break
                doomed.append(path)
                for line in lines:
                    last[str(line.get("replica"))] = (int(line.get("seq", 0)), str(line.get("hash", "")))
        anchors = [
            Anchor(replica=replica, kind="prune", seq=seq, hash=digest, time=time.time())
            for replica, (seq, digest) in sorted(last.items())
        ]
        anchors = [key.sign(a) if key is not None else a for a in anchors]
        if anchors:
            self._put_anchors(anchors)
        for path in doomed:
            path.unlink()
        return anchors

    # -- reading ----------------------------------------------------------------------------------------------

    def _events(self) -> list[AuditEvent]:
        out = []
        for position, line in self._all():
            with contextlib.suppress(KeyError, TypeError, ValueError, orjson.JSONDecodeError):
                out.append(_stored(position, line).event())
        return out

    async def search(self, query: AuditQuery) -> list[AuditEvent]:
        events = [e for e in await self._read_op(self._events) if query.matches(e)]
        events.sort(key=lambda e: e.time, reverse=query.order == "desc")
        return events[query.offset : query.offset + query.limit]

    async def get(self, event_id: str) -> AuditEvent | None:
        return next((e for e in await self._read_op(self._events) if e.event_id == event_id), None)

    async def count(
        self, query: AuditQuery, *, by: str, bucket_seconds: float | None = None
    ) -> list[tuple[float | None, str, int]]:
        if by not in GROUP_BY:
            raise ValueError(f"cannot group by {by!r}")
        counts: dict[tuple[float | None, str], int] = {}
        for event in await self._read_op(self._events):
            if query.matches(event):
                bucket = (event.time // bucket_seconds) * bucket_seconds if bucket_seconds else None
                key = (bucket, group_value(event, by))
                counts[key] = counts.get(key, 0) + 1
        return sorted(((b, v, n) for (b, v), n in counts.items()), key=lambda r: (r[0] or 0.0, r[1]))

    async def tail(self, n: int) -> tuple[list[AuditEvent], str]:
        return await self._read_op(self._tail, n)

    def _tail(self, n: int) -> tuple[list[AuditEvent], str]:
        events = self._events()[-n:] if n > 0 else []
        files = self.files()
        if not files:
            return events, "0:0"
        st = files[-1].stat()  # the end of the newest file, active or just rotated
        return events, f"{st.st_ino}:{st.st_size}"

    async def read_after(self, cursor: str, limit: int = 1000) -> tuple[list[AuditEvent], str]:
        return await self._read_op(self._read_after, cursor, limit)

    def _read_after(self, cursor: str, limit: int) -> tuple[list[AuditEvent], str]:
        inode, _, offset = cursor.partition(":")
        files = []
        for path in self.files():
            with contextlib.suppress(FileNotFoundError):
                files.append((path, path.stat().st_ino))
        start = next((i for i, (_, ino) in enumerate(files) if ino == int(inode or 0)), None)
        out: list[AuditEvent] = []
        where = cursor
        # From where the cursor points; if its file is gone (pruned), from the start of the active file.
        for i, (path, ino) in enumerate(files[start:] if start is not None else files[-1:]):
            begin = int(offset or 0) if i == 0 and start is not None else 0
            where = f"{ino}:{begin}"
            for position, line, end in self._lines(path, begin):
                with contextlib.suppress(KeyError, TypeError, ValueError, orjson.JSONDecodeError):
                    out.append(_stored(position, line).event())
                where = f"{ino}:{end}"
                if len(out) >= limit:
                    return out, where
        return out, where

    async def replicas(self) -> list[str]:
        lines = await self._read_op(self._all)
        anchors = await self._read_op(self._read_anchors)
        names = {str(line.get("replica", "")) for _, line in lines} | {a.replica for a in anchors}
        return sorted(names - {""})

    async def scan(self, replica: str) -> AsyncIterator[StoredEvent]:
        for path in await self._read_op(self.files):
            for position, line, _ in await self._read_op(self._file_lines, path):
                if line.get("replica") == replica:
                    yield _stored(position, line)

    async def anchors(self, replica: str) -> list[Anchor]:
        return [a for a in await self._read_op(self._read_anchors) if a.replica == replica]

    async def head(self, replica: str) -> ChainHead | None:
        return None  # files keep no separate head; signed checkpoints expose a cut tail
