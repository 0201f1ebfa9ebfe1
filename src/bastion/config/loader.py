"""Load `bastion.yaml`: resolve `${env:NAME}` / `${file:PATH}` references, validate, name the bad key on error."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bastion.audit.config import DEFAULT_KEY_FILE
from bastion.config.model import BastionConfig
from bastion.errors import ConfigError

_REFERENCE = re.compile(r"\$\{(env|file):([^}]+)\}")


def _resolve(value: Any, path: str, base: Path) -> Any:
    if isinstance(value, dict):
        return {k: _resolve(v, f"{path}.{k}" if path else str(k), base) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, f"{path}[{i}]", base) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        return _REFERENCE.sub(lambda m: _lookup(m.group(1), m.group(2), path, base), value)
    return value


def _lookup(kind: str, name: str, path: str, base: Path) -> str:
    if kind == "env":
        if name not in os.environ:
            raise ConfigError(f"environment variable {name} is not set", path=path)
        return os.environ[name]
    file = (base / name).expanduser() if not Path(name).is_absolute() else Path(name)
    try:
        return file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read referenced file {name}", path=path) from exc


def parse_config(data: Any, *, base: Path | None = None) -> BastionConfig:
    """Validate an already-parsed YAML/JSON document."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the config must be a mapping")
    resolved = _resolve(data, "", base or Path.cwd())
    try:
        return BastionConfig.model_validate(resolved)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(first["msg"], path=where) from None


def load_config(path: str | Path) -> BastionConfig:
    """Read and validate a config file; raises `ConfigError` naming the bad key's path."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML in {file}: {exc}") from None
    return anchor_data_paths(parse_config(data, base=file.parent), file.parent.resolve())


def anchor_data_paths(config: BastionConfig, base: Path) -> BastionConfig:
    """Make relative data paths (state store, audit files) relative to the config file's folder.

    Why: `bastion stdio` is launched by desktop clients from any working directory (often `/`), and
    `bastion audit` / `bastion keys` must open the same files as the running gateway wherever they run.
    """

    def anchored(path: str) -> str:
        return path if path == ":memory:" or Path(path).is_absolute() else str(base / path)

    state = config.state.model_copy(update={"path": anchored(config.state.path)})
    sinks = [
        sink.model_copy(update={"path": anchored(sink.path)}) if hasattr(sink, "path") else sink
        for sink in config.audit.sinks
    ]
    witnesses = [
        w.model_copy(update={"path": anchored(w.path)}) if hasattr(w, "path") else w
        for w in config.audit.witnesses
    ]
    key_file = config.audit.signing_key_file
    if not key_file and config.state.backend == "embedded" and config.state.path != ":memory:":
        key_file = str(Path(state.path).parent / DEFAULT_KEY_FILE)  # next to the state store
    elif not key_file and config.state.backend == "redis":
        key_file = str(Path(".bastion") / DEFAULT_KEY_FILE)
    audit = config.audit.model_copy(
        update={
            "sinks": sinks,
            "witnesses": witnesses,
            "signing_key_file": anchored(key_file) if key_file else "",
        }
    )
    return config.model_copy(update={"state": state, "audit": audit})
