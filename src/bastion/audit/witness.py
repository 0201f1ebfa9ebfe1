"""Witnesses: each checkpoint's head (replica, seq, hash, signature) kept outside the audit store.

Why: someone who can write the audit store can cut the tail of a chain together with its checkpoints, or
rewrite an unsigned chain from the start, and the store alone then looks whole. The witness lives elsewhere
(the state store by default, or a file on another volume), so `verify` compares the chain with the latest head
the witness saw and names what is missing or different. A webhook witness hands each head to a service someone
else runs; it is write-only here (its receiver keeps and compares the heads), so `verify` does not read it.

Rules:
- Heads are keyed by (sink, replica): each sink links its own chain.
- A witness only moves forward: a head at a lower seq than the one it holds is ignored (a slower process).
- A witness is written before the sink's own checkpoint, so a sink never holds a checkpoint its witness lacks.
- What a witness cannot prove: a rollback of the witness *and* the chain to the same old head (see docs/audit.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Protocol

import anyio
import anyio.to_thread
import httpx
import orjson

from bastion.audit.chain import Anchor
from bastion.audit.config import FileWitnessConfig, StateWitnessConfig, WebhookWitnessConfig
from bastion.audit.reach import safe_location
from bastion.state.base import RecordStore

NAMESPACE: Final = "audit-witness"
"""State-store record namespace of the witness heads; the record id is `<sink>/<replica>`."""
_ATTEMPTS: Final = 8
"""Compare-and-set retries when several processes move the same head at once."""


class Witness(Protocol):
    """Keeps the latest checkpoint head of every chain. Implementations: `StateWitness`, `FileWitness`,
    `WebhookWitness` (write-only)."""

    name: str

    async def record(self, sink: str, anchor: Anchor) -> None:
        """Keep `anchor` as the head of (sink, anchor.replica) unless a later one is kept already."""
        ...

    async def heads(self, sink: str) -> dict[str, Anchor]:
        """The latest head of every chain of `sink`, by replica."""
        ...


class StateWitness:
    """Heads as records of the state store (the SQLite state file or Redis), one per sink and chain."""

    name = "state"

    def __init__(self, store: RecordStore) -> None:
        self._store = store

    async def record(self, sink: str, anchor: Anchor) -> None:
        record_id = f"{sink}/{anchor.replica}"
        new = anchor.to_dict()
        for _ in range(_ATTEMPTS):
            old = await self._store.get_record(NAMESPACE, record_id)
            if old is not None and int(old.get("seq", 0)) >= anchor.seq:
                return
            if await self._store.replace_record(NAMESPACE, record_id, new, expected=old):
                return
        raise RuntimeError(f"the witness head of {record_id} kept changing")

    async def heads(self, sink: str) -> dict[str, Anchor]:
        prefix = f"{sink}/"
        return {
            anchor.replica: anchor
            for record_id, record in await self._store.list_records(NAMESPACE)
            if record_id.startswith(prefix)
            for anchor in [Anchor.from_dict(record)]
        }


class FileWitness:
    """Heads appended to a JSON Lines file (fsynced): the last line of a chain is its head."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"file {self.path}"
        self._lock = anyio.Lock()

    async def record(self, sink: str, anchor: Anchor) -> None:
        line = orjson.dumps({"sink": sink, **anchor.to_dict()}) + b"\n"
        async with self._lock:
            await anyio.to_thread.run_sync(self._append, line)

    def _append(self, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            os.write(fd, line)  # one write of a short line: O_APPEND keeps concurrent writers' lines whole
            os.fsync(fd)
        finally:
            os.close(fd)

    async def heads(self, sink: str) -> dict[str, Anchor]:
        return await anyio.to_thread.run_sync(self._read, sink)

    def _read(self, sink: str) -> dict[str, Anchor]:
        try:
            lines = self.path.read_bytes().splitlines()
        except FileNotFoundError:
            return {}
        heads: dict[str, Anchor] = {}
        for raw in lines:
            try:
                data = orjson.loads(raw)
                anchor = Anchor.from_dict(data)
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a torn last line after a crash; the lines before it still count
            if data.get("sink") == sink and anchor.seq >= heads.get(anchor.replica, anchor).seq:
                heads[anchor.replica] = anchor
        return heads


class WitnessUnavailable(Exception):
    """A witness did not take a head; the message names the witness, never a URL's token."""


class WebhookWitness:
    """Heads POSTed as JSON (`{"sink": ..., "replica", "kind", "seq", "hash", "time", "signature"...}`) to a URL.

    Any 2xx answer within the timeout is success; anything else raises `WitnessUnavailable`, which the
    recorder handles by its mode (see recorder.py). `heads()` knows nothing: the receiver keeps the heads.
    """

    def __init__(self, url: str, *, timeout_seconds: float = 5.0) -> None:
        self._url = url
        self._timeout = timeout_seconds
        self.name = f"webhook {safe_location(url)}"

    async def record(self, sink: str, anchor: Anchor) -> None:
        body = {"sink": sink, **anchor.to_dict()}
        try:
            with anyio.fail_after(self._timeout):
                async with httpx.AsyncClient(timeout=self._timeout) as client:
                    response = await client.post(self._url, json=body)
        except (httpx.HTTPError, TimeoutError) as exc:
            # httpx messages can repeat the URL, token and all: only the error's kind leaves this method.
            raise WitnessUnavailable(f"{self.name}: {type(exc).__name__}") from None
        if not response.is_success:
            raise WitnessUnavailable(f"{self.name}: answered HTTP {response.status_code}")

    async def heads(self, sink: str) -> dict[str, Anchor]:
        return {}


WitnessConfigs = Sequence[StateWitnessConfig | FileWitnessConfig | WebhookWitnessConfig]


def build_witnesses(
    configs: WitnessConfigs, store: RecordStore | None, *, readable_only: bool = False
) -> list[Witness]:
    """The configured witnesses; a state witness needs the state store (None: it is left out).

    `readable_only` (for `verify`) leaves out the write-only webhooks, whose heads this side cannot read.
    """
    out: list[Witness] = []
    for config in configs:
        if isinstance(config, FileWitnessConfig):
            out.append(FileWitness(config.path))
        elif isinstance(config, WebhookWitnessConfig):
            if not readable_only:
                out.append(
                    WebhookWitness(config.url.get_secret_value(), timeout_seconds=config.timeout_seconds)
                )
        elif store is not None:
            out.append(StateWitness(store))
    return out
