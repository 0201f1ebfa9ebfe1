"""The `schema` detector: request arguments against the tool's `inputSchema` (jsonschema-rs), plus size and depth
limits on any payload.

Unlike the other detectors it judges the payload as a whole, not one string: the engine hands it the parsed payload
and what the single walk measured. It never resolves a remote `$ref` (no I/O), and validation messages are not kept:
they quote argument values, and findings must not.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

import jsonschema_rs
import orjson

from bastion.guard.config import SchemaConfig
from bastion.guard.detector import Direction, ScanContext
from bastion.guard.finding import Finding, Severity
from bastion.guard.payload import Walk, format_path

logger = logging.getLogger("bastion.guard.schema")

_CACHE_SIZE: Final = 512
"""Compiled validators kept, keyed by the schema's canonical JSON (tools change rarely)."""

_CAMEL: Final = re.compile(r"(?<!^)(?=[A-Z])")


def _no_remote(uri: str) -> Any:
    raise ValueError("remote $ref is not resolved")  # the guard does no I/O


class SchemaDetector:
    """Validates tool-call arguments and bounds payload size."""

    name = "schema"

    def __init__(self, config: SchemaConfig | None = None) -> None:
        self.config = config if config is not None else SchemaConfig()
        self.max_depth: int = self.config.max_depth
        self._validators: OrderedDict[bytes, Any] = OrderedDict()

    def scan(self, text: str, context: ScanContext) -> list[Finding]:
        """Per-string use: only the string-length limit applies to a lone string."""
        if len(text) > self.config.max_string_chars:
            return [self._finding("too_large", Severity.HIGH, context.path)]
        return []

    def inspect_payload(
        self, payload: Any, walk: Walk, schema: Mapping[str, Any] | None, direction: Direction
    ) -> list[Finding]:
        """Limits for every direction the detector is active in; schema validation for requests."""
        found: list[Finding] = []
        if walk.too_deep_at is not None:
            found.append(self._finding("too_deep", Severity.HIGH, format_path(walk.too_deep_at)))
        if walk.longest > self.config.max_string_chars or walk.chars > self.config.max_total_chars:
            found.append(self._finding("too_large", Severity.HIGH, "$"))
        if walk.nodes > self.config.max_nodes:
            found.append(self._finding("too_many_values", Severity.HIGH, "$"))
        if (
            schema is not None
            and direction is Direction.REQUEST
            and self.config.validate_arguments
            and walk.too_deep_at is None
        ):
            found.extend(self._validate(payload, schema))
        return found

    def _validate(self, payload: Any, schema: Mapping[str, Any]) -> list[Finding]:
        validator = self._validator(schema)
        if validator is None:
            return [self._finding("schema_unusable", Severity.LOW, "$")]
        found: list[Finding] = []
        for error in validator.iter_errors(payload):
            kind = _CAMEL.sub("_", type(error.kind).__name__).lower()
            found.append(
                self._finding(f"schema_{kind}", Severity.MEDIUM, format_path(list(error.instance_path)))
            )
            if len(found) >= 16:
                break
        return found

    def _validator(self, schema: Mapping[str, Any]) -> Any | None:
        try:
            key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)
        except TypeError:
            return None
        cached = self._validators.get(key)
        if cached is not None:
            self._validators.move_to_end(key)
            return cached
        try:
            validator = jsonschema_rs.validator_for(dict(schema), retriever=_no_remote)
        except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError, TypeError):
            logger.warning("a tool inputSchema could not be compiled; its arguments are not validated")
            return None
        self._validators[key] = validator
        if len(self._validators) > _CACHE_SIZE:
            self._validators.popitem(last=False)
        return validator

    def _finding(self, type_: str, severity: Severity, path: str) -> Finding:
        return Finding(detector=self.name, type=type_, severity=severity, confidence=1.0, path=path)
