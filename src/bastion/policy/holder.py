"""`PolicyHolder`: the policy in force, swapped whole on reload; a bad new policy never replaces a good one.

Rules:
- `engine` is read by stages on every call; `reload()` builds a complete new engine first and then swaps one
  attribute, so a call sees either the old or the new policy, never a mix.
- An invalid file (YAML, schema or CEL) is logged with its path and reason, and the old policy stays.
- `watch()` follows the file's directory (editors replace files by rename); the lead wires SIGHUP to `reload()`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import yaml
from pydantic import ValidationError

from bastion.errors import ConfigError
from bastion.policy.config import PolicyConfig
from bastion.policy.engine import PolicyEngine

logger = logging.getLogger("bastion.policy")


def parse_policy(data: Any, *, section: str = "policy") -> PolicyConfig:
    """Validate a policy mapping; `ConfigError` names the bad key (e.g. `policy.roles.ro.rules.0.effect`)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the policy must be a mapping", path=section)
    try:
        return PolicyConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join([section, *(str(p) for p in first["loc"])])
        raise ConfigError(first["msg"], path=where) from None


def load_policy_file(path: str | Path) -> PolicyEngine:
    """Read a YAML file holding either a `policy:` section (a whole bastion.yaml) or the bare policy."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", path="policy") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {type(exc).__name__}", path="policy") from None
    if isinstance(document, dict) and "policy" in document:
        document = document["policy"]
    return PolicyEngine(parse_policy(document))


class PolicyHolder:
    """Holds the current `PolicyEngine`; optionally backed by a file that can be reloaded and watched."""

    def __init__(self, engine: PolicyEngine, *, path: str | Path | None = None) -> None:
        self.engine = engine
        self.path = Path(path) if path is not None else None
        self.generation = 0
        """Incremented on every successful reload."""
        self.on_reload: list[Callable[[bool], None]] = []
        """Called after every reload attempt with whether the new policy is in force (audit, list_changed)."""
        for warning in engine.warnings:
            logger.warning("policy: %s", warning)

    @classmethod
    def from_config(cls, config: PolicyConfig) -> PolicyHolder:
        """A holder for an inline policy section (no file: `reload()` is a no-op)."""
        return cls(PolicyEngine(config))

    @classmethod
    def from_file(cls, path: str | Path) -> PolicyHolder:
        """Load the file once; raises `ConfigError` if the first policy is invalid (no old one to keep)."""
        return cls(load_policy_file(path), path=path)

    def reload(self) -> bool:
        """Re-read the file; True when the new policy is in force, False when the old one was kept."""
        if self.path is None:
            return False
        try:
            engine = load_policy_file(self.path)
        except ConfigError as exc:
            logger.error("policy reload from %s rejected, keeping the previous policy: %s", self.path, exc)
            self._notify(False)
            return False
        for warning in engine.warnings:
            logger.warning("policy: %s", warning)
        self.engine = engine
        self.generation += 1
        logger.info("policy reloaded from %s (generation %d)", self.path, self.generation)
        self._notify(True)
        return True

    def _notify(self, applied: bool) -> None:
        for listener in self.on_reload:
            try:
                listener(applied)
            except Exception:  # a listener's bug must not undo a reload
                logger.exception("policy reload listener failed")

    async def watch(self, *, stop: anyio.Event | None = None, ready: anyio.Event | None = None) -> None:
        """Reload whenever the file changes, until `stop` is set. `ready` is set once watching has begun."""
        from watchfiles import awatch  # imported here: only a watching process needs the native extension

        if self.path is None:
            return
        name = self.path.name
        watcher = awatch(
            self.path.parent,
            stop_event=stop,
            debounce=50,
            step=10,
            recursive=False,
            yield_on_timeout=True,
            rust_timeout=100,
        )
        async for changes in watcher:
            if ready is not None:
                ready.set()  # the first (possibly empty, on timeout) batch proves the watcher is running
            if any(Path(p).name == name for _change, p in changes):
                await anyio.to_thread.run_sync(self.reload)
