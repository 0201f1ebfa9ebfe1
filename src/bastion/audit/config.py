"""`AuditConfig`: the `audit:` section (where events go, strict or relaxed, caps, retention, signing).

Example:
    audit:
      mode: strict                  # a reply is released only after its event is durable
      max_argument_bytes: 4096      # bigger arguments are cut, with a truncation marker
      retention_days: 90            # older events are pruned, leaving a (signed) anchor
      # No signing_key: an Ed25519 key is made on first start next to the state store (see `signing_key_file`).
      checkpoint_every: 1000        # a signed checkpoint every N events, every T seconds, and at shutdown
      checkpoint_seconds: 60
      witnesses:                    # every checkpoint's head also goes outside the audit store
        - type: state               # the state store (SQLite file or Redis): the default
        - type: file
          path: /mnt/other-volume/bastion-witness.jsonl
      sinks:
        - type: sqlite
          path: .bastion/audit.db
        - type: postgres
          url: ${env:AUDIT_DATABASE_URL}
        - type: jsonl
          path: /var/log/bastion/audit.jsonl
          max_bytes: 67108864
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

DEFAULT_KEY_FILE: Final = "bastion-audit-ed25519.pem"
"""Name of the signing key Bastion makes on first start, in the state store's folder."""
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
"""SQL identifiers we interpolate (table prefix, schema): lowercase, no quoting needed, no injection."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SqliteSinkConfig(_Model):
    """The default sink: one SQLite file in WAL mode, batched commits."""

    type: Literal["sqlite"] = "sqlite"
    name: str = ""
    """Name used by `bastion audit --sink NAME`; defaults to the type."""
    path: str = ".bastion/audit.db"
    """Database file (relative paths are relative to the config file's folder, like `state.path`)."""
    synchronous: Literal["full", "normal"] = "full"
    """`full` fsyncs every commit (durable across power loss); `normal` survives a process crash only."""
    busy_timeout_seconds: float = Field(default=10.0, gt=0)
    """How long a commit waits for another process writing the same file."""


class PostgresSinkConfig(_Model):
    """PostgreSQL through asyncpg; the tables are created on start."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    type: Literal["postgres"]
    name: str = ""
    url: SecretStr
    """`postgresql://user@host:5432/db`; may carry a password, so it is never logged."""
    schema_name: str = Field(default="public", alias="schema")
    """Schema holding the tables (created when missing)."""
    table_prefix: str = "bastion_audit"
    """Tables are `<prefix>_events`, `<prefix>_anchors`, `<prefix>_heads`."""
    pool_size: int = Field(default=4, ge=1, le=64)
    timeout_seconds: float = Field(default=5.0, gt=0)
    """Upper bound of one statement; a slower database counts as down."""

    @field_validator("schema_name", "table_prefix")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.fullmatch(value):
            raise ValueError("must be lowercase letters, digits and underscores, starting with a letter")
        return value


class JsonlSinkConfig(_Model):
    """JSON Lines files with size-based rotation (ship them with any log forwarder)."""

    type: Literal["jsonl"]
    name: str = ""
    path: str = ".bastion/audit.jsonl"
    """The active file; rotated files are `<stem>.<000001><suffix>` next to it."""
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Size at which the active file is rotated."""
    fsync: bool = True
    """fsync after every batch (strict durability); off, a power loss may lose the last batches."""


class StateWitnessConfig(_Model):
    """Checkpoint heads kept in the state store (`state:`, SQLite file or Redis), one record per sink and chain."""

    type: Literal["state"] = "state"


class FileWitnessConfig(_Model):
    """Checkpoint heads appended to a file (JSON Lines, fsynced), best on another volume than the audit store."""

    type: Literal["file"]
    path: str
    """The witness file (relative paths are relative to the config file's folder)."""


class WebhookWitnessConfig(_Model):
    """Checkpoint heads POSTed as JSON to a URL kept by someone else (write-only: `verify` does not read it)."""

    type: Literal["webhook"]
    url: SecretStr
    """Where each head is POSTed (`${env:...}` when the URL carries a token); never logged in full."""
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    """Longest one POST may take; slower is a failure of that checkpoint's witness write."""


WitnessConfig = Annotated[
    StateWitnessConfig | FileWitnessConfig | WebhookWitnessConfig, Field(discriminator="type")
]


def _default_witnesses() -> list[WitnessConfig]:
    return [StateWitnessConfig()]


SinkConfig = Annotated[SqliteSinkConfig | PostgresSinkConfig | JsonlSinkConfig, Field(discriminator="type")]


def _default_sinks() -> list[SinkConfig]:
    return [SqliteSinkConfig()]


class AuditConfig(_Model):
    """The `audit:` section. Everything has a default: no section means strict auditing into SQLite."""

    enabled: bool = True
    mode: Literal["strict", "relaxed"] = "strict"
    """`strict`: a reply waits for its event to be durable and calls are refused while the store is down.
    `relaxed`: calls pass, events are written in the background, and lost ones are counted (`dropped`)."""
    sinks: list[SinkConfig] = Field(default_factory=lambda: _default_sinks())
    """Every sink gets every event; the first one answers queries (`bastion audit`, the dashboard)."""
    max_argument_bytes: int = Field(default=4096, ge=64)
    """Arguments whose JSON is larger are replaced by a truncated preview and a marker."""
    include_results: bool = False
    """Record (capped) results too; by default only their size, error code and `isError`."""
    max_result_bytes: int = Field(default=4096, ge=64)
    retention_days: float | None = Field(default=None, gt=0)
    """Prune events older than this (on start and every hour); None keeps everything."""
    signing_key: SecretStr | None = None
    """HMAC secret or Ed25519 private key (PEM), usually `${file:...}` or `${env:...}`: signs checkpoints and
    prune anchors. When unset, the key in `signing_key_file` is used (and made on first start)."""
    signing_algorithm: Literal["hmac-sha256", "ed25519"] = "hmac-sha256"
    """Algorithm of an explicit `signing_key` (the key Bastion makes itself is always Ed25519)."""
    signing_key_file: str = ""
    """Ed25519 private key made on first start (mode 0600; public half in `<file>.pub`). Empty:
    `bastion-audit-ed25519.pem` next to the state store (`.bastion/` beside the config for Redis)."""
    unsigned: bool = False
    """Opt out of signing: no key is made and checkpoints are unsigned heads kept only in the witnesses."""
    checkpoint_every: int = Field(default=1000, ge=1)
    """Events between two checkpoints of a chain (one more every `checkpoint_seconds`, and one on close)."""
    checkpoint_seconds: float = Field(default=60.0, gt=0)
    """Longest time new events wait for a checkpoint."""
    witnesses: list[WitnessConfig] = Field(default_factory=lambda: _default_witnesses())
    """Where each checkpoint's head (replica, seq, hash, signature) is also written, outside the audit store."""
    queue_size: int = Field(default=10_000, ge=1)
    """Events waiting for a commit, and events kept for a sink that is down; beyond that they are dropped."""
    batch_size: int = Field(default=256, ge=1, le=900)
    """Most events committed in one transaction (group commit)."""
    commit_timeout_seconds: float = Field(default=5.0, gt=0)
    """Longest a strict call waits for its commit before it is refused."""

    @model_validator(mode="after")
    def _check_sinks(self) -> AuditConfig:
        if self.enabled and not self.sinks:
            raise ValueError("audit is enabled but has no sinks")
        names = [sink_name(s) for s in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError("two audit sinks share a name; give them distinct `name`s")
        return self


def sink_name(config: SqliteSinkConfig | PostgresSinkConfig | JsonlSinkConfig) -> str:
    """The name a sink answers to (its `name`, or its type)."""
    return config.name or config.type
