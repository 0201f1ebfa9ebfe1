"""The `bastion.yaml` schema (pydantic, edges only). Each section maps 1:1 to a runtime object."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bastion.audit.config import AuditConfig
from bastion.auth.config import AuthConfig
from bastion.core.config import ClusterConfig as ClusterConfig
from bastion.core.config import LimitsConfig as LimitsConfig
from bastion.core.config import ListenConfig as ListenConfig
from bastion.core.config import RoutingConfig as RoutingConfig
from bastion.guard.config import GuardrailsConfig
from bastion.policy.config import PolicyConfig
from bastion.state.config import StateConfig
from bastion.telemetry.config import TelemetryConfig
from bastion.upstream.config import ServerConfig as ServerConfig
from bastion.web.config import UIConfig

SERVER_NAME = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
"""Lowercase letters, digits and single dashes: `__` can never appear, so `<server>__<tool>` is unambiguous."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BastionConfig(_Model):
    listen: ListenConfig = Field(default_factory=ListenConfig)
    servers: dict[str, ServerConfig] = Field(default_factory=dict)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    state: StateConfig = Field(default_factory=StateConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    guardrails: GuardrailsConfig = Field(default_factory=GuardrailsConfig)
    """Detectors and their actions on arguments, results and tool definitions; tool pins (rug pulls)."""
    audit: AuditConfig = Field(default_factory=AuditConfig)
    """The audit trail: strict (replies wait for a durable record) into SQLite by default."""
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    """Prometheus metrics, OpenTelemetry traces and anomaly alerts."""
    ui: UIConfig = Field(default_factory=UIConfig)
    """The operator dashboard (`/ui`) and admin API (`/api`), for principals with the admin role."""
    policy: PolicyConfig | None = None
    """Inline policy (hot-reloaded from this file). Absent and no `policy_file`: no authorization stage."""
    policy_file: str | None = None
    """A separate policy file (its `policy:` section), watched and hot-reloaded."""
    instructions: str | None = None
    """Extra instructions Bastion adds in front of the merged upstream instructions."""
    refusals: Literal["error", "result"] = "result"
    """How a guardrail or policy refusal of a visible tool's `tools/call` is answered: an `isError` result the
    model can read (`result`), or a JSON-RPC error (`error`). Hidden and unknown tools are always errors."""

    @field_validator("servers")
    @classmethod
    def _check_server_names(cls, servers: dict[str, ServerConfig]) -> dict[str, ServerConfig]:
        for name in servers:
            if not SERVER_NAME.fullmatch(name):
                raise ValueError(f"server name {name!r} must be lowercase letters, digits and single dashes")
        return servers

    @model_validator(mode="after")
    def _check_namespace(self) -> BastionConfig:
        if not self.routing.namespace and len([s for s in self.servers.values() if s.enabled]) > 1:
            raise ValueError("routing.namespace: false needs exactly one enabled server")
        return self
