"""`PolicyConfig`: roles with allow/deny rules, the principal -> roles map, and rate limits.

Example:
    policy:
      mode: enforce            # or monitor: would-be denials are flagged, calls proceed
      default: deny
      principals: {ci-bot: [readonly]}
      roles:
        readonly:
          rules:
            - id: read-tools
              effect: allow
              tools: ["*__get_*", "*__list_*"]
            - id: public-files
              effect: allow
              tools: ["files__read_file"]
              when: 'args.path.startsWith("/srv/public/")'
      rate_limits:
        - id: per-principal
          per: principal
          calls: 60
          window_seconds: 60
          concurrent: 4
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bastion.policy.flow_config import FlowConfig

LogLevel = Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
"""MCP's `logging/setLevel` levels (RFC 5424), least severe first."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleConfig(_Model):
    """One allow or deny rule. Selectors are glob lists; a rule with no selector at all matches nothing."""

    id: str | None = None
    """Stable name used in explanations and audit; defaults to `roles.<role>.rules[<i>]`."""
    effect: Literal["allow", "deny"] = "allow"
    servers: list[str] = Field(default_factory=list)
    """Server name globs. Alone, the rule covers everything on those servers; with other selectors, it narrows."""
    tools: list[str] = Field(default_factory=list)
    """Globs on namespaced tool names, `<server>__<tool>`."""
    prompts: list[str] = Field(default_factory=list)
    """Globs on namespaced prompt names, `<server>__<prompt>`."""
    resources: list[str] = Field(default_factory=list)
    """Globs on resource URIs, e.g. `file:///srv/public/*`."""
    when: str | None = None
    """CEL condition with `args`, `principal`, `tool`, `server`, `kind`, `name` in scope."""
    monitor: bool = False
    """Observe only: a denial this rule causes is flagged and the call proceeds."""

    @model_validator(mode="after")
    def _check_selectors(self) -> RuleConfig:
        if not (self.servers or self.tools or self.prompts or self.resources):
            raise ValueError("a rule needs at least one of servers, tools, prompts, resources")
        return self


class RoleConfig(_Model):
    rules: list[RuleConfig] = Field(default_factory=list)
    description: str = ""
    log_level: LogLevel | None = None
    """The most verbose `logging/setLevel` this role may ask for (beyond `policy.log_level`)."""


class RateLimitConfig(_Model):
    """A token bucket (and optionally a concurrency cap) applied to matching routed calls."""

    id: str
    per: Literal["principal", "role", "server", "tool", "global"] = "principal"
    """What gets its own bucket: each principal, each role, each server, each tool, or one for everyone."""
    principals: list[str] = Field(default_factory=lambda: ["*"])
    roles: list[str] = Field(default_factory=list)
    """Only callers with one of these roles (empty: any caller)."""
    servers: list[str] = Field(default_factory=lambda: ["*"])
    tools: list[str] = Field(default_factory=list)
    """Only these namespaced tools (empty: every routed call, tools or not)."""
    calls: int | None = Field(default=None, gt=0)
    """Calls allowed per window (the bucket capacity)."""
    window_seconds: float = Field(default=60.0, gt=0)
    """The bucket refills `calls` tokens over this many seconds."""
    concurrent: int | None = Field(default=None, gt=0)
    """Calls allowed in flight at once."""

    @model_validator(mode="after")
    def _check_limit(self) -> RateLimitConfig:
        if self.calls is None and self.concurrent is None:
            raise ValueError("a rate limit needs `calls` or `concurrent`")
        return self


class PolicyConfig(_Model):
    """The `policy:` section."""

    enabled: bool = True
    """Off: every call is allowed (only sensible for local experiments)."""
    mode: Literal["enforce", "monitor"] = "enforce"
    default: Literal["deny", "allow"] = "deny"
    principals: dict[str, list[str]] = Field(default_factory=dict)
    """Roles granted to principals by name, on top of roles from API keys and token claims."""
    roles: dict[str, RoleConfig] = Field(default_factory=dict)
    rate_limits: list[RateLimitConfig] = Field(default_factory=list)
    lease_seconds: float = Field(default=600.0, gt=0)
    """Longest a concurrency slot is held if its call never reports back (a crashed replica)."""
    flow: FlowConfig = Field(default_factory=FlowConfig)
    log_level: LogLevel = "debug"
    """The most verbose `logging/setLevel` any caller may ask for; roles may allow more (`roles.<r>.log_level`).
    Upstream logs can carry request data, so a deployment may keep debug logs for operators' roles only."""
    """Tool labels, session taint and flow rules (see `flow_config.py`, docs/flow.md)."""
