"""`PolicyEngine`: a pure decision (`decide`) and a pure visibility test (`visible`) over a compiled policy.

Rules:
- Default deny: a call is allowed only by an allow rule of one of the caller's roles.
- Deny rules win over allow rules, in every role. A deny rule whose condition fails to evaluate denies.
- Allow rules match exact canonical names only; deny rules also match look-alike variants (see `names`).
- A resource URI with dot segments, needless encoding or an odd scheme is denied before any rule.
- `monitor` (a rule's, or the global mode) turns a would-be denial into an allowed call that is flagged.
- Conditions (CEL) see `args`, `principal`, `tool`, `server`, `kind`, `name`; they are ignored for visibility,
  so a tool allowed only for some arguments is listed and each call is judged on its arguments.
- No I/O here: the engine is rebuilt on reload and swapped whole (`PolicyHolder`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Final, Literal, get_args

from bastion.policy.cel import Condition, activation
from bastion.policy.config import LogLevel, PolicyConfig, RateLimitConfig, RuleConfig
from bastion.policy.flow import FlowPolicy
from bastion.policy.names import allow_matches, deny_matches, uri_allow_matches, uri_deny_matches, uri_problem
from bastion.types import Principal

Kind = Literal["tool", "prompt", "resource", "server"]
"""What a decision is about: a tool, a prompt, a resource URI, or a server as a whole (tasks, logging)."""

KINDS: Final = ("tool", "prompt", "resource", "server")
NAMESPACE_SEPARATOR: Final = "__"


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The outcome of one policy decision, with its explanation for audit."""

    allowed: bool
    """Whether the call may proceed (True also for monitored would-be denials)."""
    rule: str
    """Id of the rule that decided (or that would have denied, in monitor mode); empty for the default."""
    explanation: str
    """Which rule matched, or that none did. Never contains argument values."""
    monitor: bool = False
    """True when the call would have been denied but a monitor rule or global monitor mode let it through."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "rule": self.rule,
            "explanation": self.explanation,
            "monitor": self.monitor,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class _Rule:
    id: str
    effect: str
    servers: tuple[str, ...]
    tools: tuple[str, ...]
    prompts: tuple[str, ...]
    resources: tuple[str, ...]
    condition: Condition | None
    monitor: bool

    def _selectors(self, kind: str) -> tuple[str, ...] | None:
        """Globs for `kind`; None when the rule names other kinds only (it does not cover this kind)."""
        chosen = {"tool": self.tools, "prompt": self.prompts, "resource": self.resources}.get(kind, ())
        if chosen:
            return chosen
        if self.tools or self.prompts or self.resources:
            return None
        return ()  # a servers-only rule covers everything on its servers

    def targets(self, kind: str, server: str, name: str) -> bool:
        """Whether the rule covers this target (conditions aside)."""
        deny = self.effect == "deny"
        if self.servers and not any(
            (deny_matches if deny else fnmatchcase)(server, glob) for glob in self.servers
        ):
            return False
        if kind == "server":
            if deny:
                return bool(self.servers) and not (self.tools or self.prompts or self.resources)
            if self.servers:
                return True
            head = server + NAMESPACE_SEPARATOR
            return any(fnmatchcase(head, g.split(NAMESPACE_SEPARATOR, 1)[0] + NAMESPACE_SEPARATOR)
                       for g in (*self.tools, *self.prompts))  # fmt: skip
        globs = self._selectors(kind)
        if globs is None:
            return False
        if not globs:
            return True
        if kind == "resource":
            match: Callable[[str, str], bool] = uri_deny_matches if deny else uri_allow_matches
        else:
            match = deny_matches if deny else allow_matches
        return any(match(name, glob) for glob in globs)


def _compile_rule(role: str, index: int, rule: RuleConfig) -> _Rule:
    path = f"policy.roles.{role}.rules[{index}]"
    return _Rule(
        id=rule.id or f"roles.{role}.rules[{index}]",
        effect=rule.effect,
        servers=tuple(rule.servers),
        tools=tuple(rule.tools),
        prompts=tuple(rule.prompts),
        resources=tuple(rule.resources),
        condition=Condition(rule.when, path=f"{path}.when") if rule.when else None,
        monitor=rule.monitor,
    )


class PolicyEngine:
    """A compiled policy. Build with `PolicyEngine(config)`; invalid CEL raises `ConfigError` naming the rule."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self._roles: dict[str, tuple[_Rule, ...]] = {
            role: tuple(_compile_rule(role, i, rule) for i, rule in enumerate(spec.rules))
            for role, spec in config.roles.items()
        }
        self._principal_roles = {name: frozenset(roles) for name, roles in config.principals.items()}
        self.flow = FlowPolicy(config.flow)
        """Tool labels, taint and flow rules (`policy.flow`), applied by the flow stage."""
        self.warnings: list[str] = self._lint()
        """Config that can never match, reported at load time."""

    @property
    def rate_limits(self) -> list[RateLimitConfig]:
        return list(self.config.rate_limits)

    def _lint(self) -> list[str]:
        warnings: list[str] = []
        for name, roles in self.config.principals.items():
            for role in roles:
                if role not in self.config.roles:
                    warnings.append(f"policy.principals.{name}: role {role!r} is not defined")
        for role, rules in self._roles.items():
            for rule in rules:
                for glob in (*rule.tools, *rule.prompts):
                    if rule.effect == "allow" and NAMESPACE_SEPARATOR not in glob and "*" not in glob:
                        warnings.append(
                            f"rule {rule.id} in role {role}: {glob!r} is not a <server>__<name> name"
                        )
        return warnings

    def roles_of(self, principal: Principal) -> frozenset[str]:
        """The principal's own roles plus those the policy grants it by name."""
        return principal.roles | self._principal_roles.get(principal.name, frozenset())

    def may_set_log_level(self, principal: Principal, level: str) -> Decision:
        """Whether `principal` may ask for log messages from `level` up (`logging/setLevel`).

        The most verbose level allowed is `policy.log_level` or, if more verbose, any of the principal's roles'
        `log_level`; a less verbose request is always fine (it only asks for fewer messages).
        """
        if not self.config.enabled:
            return Decision(allowed=True, rule="", explanation="policy disabled")
        levels = get_args(LogLevel)
        allowed = [self.config.log_level] + [
            role.log_level
            for name, role in self.config.roles.items()
            if name in self.roles_of(principal) and role.log_level is not None
        ]
        floor = min(levels.index(a) for a in allowed)
        if level in levels and levels.index(level) >= floor:
            return Decision(allowed=True, rule="log-level", explanation=f"log level {level} allowed")
        return self._deny("log-level", f"log level {level} is more verbose than allowed ({levels[floor]})")

    def principal_doc(self, principal: Principal) -> dict[str, Any]:
        """The `principal` a CEL condition sees (name, roles with policy grants, method, claims)."""
        return _principal_doc(principal, self.roles_of(principal))

    def _rules(self, principal: Principal) -> list[_Rule]:
        roles = self.roles_of(principal)
        return [rule for role, rules in self._roles.items() if role in roles for rule in rules]

    def decide(
        self, principal: Principal, kind: Kind, server: str, name: str, args: Mapping[str, Any] | None = None
    ) -> Decision:
        """Whether `principal` may use `name` (upstream-local tool/prompt name, or a URI) on `server`."""
        if not self.config.enabled:
            return Decision(allowed=True, rule="", explanation="policy disabled")
        full = f"{server}{NAMESPACE_SEPARATOR}{name}" if kind in ("tool", "prompt") else name
        if kind == "resource" and (problem := uri_problem(name)) is not None:
            return self._deny("uri-check", f"resource URI refused: {problem}")
        scope: dict[str, Any] | None = None

        def condition(rule: _Rule) -> bool | None:
            nonlocal scope
            if rule.condition is None:
                return True
            if scope is None:
                scope = activation(
                    args=dict(args or {}), principal=_principal_doc(principal, self.roles_of(principal)),
                    kind=kind, server=server, name=full,
                )  # fmt: skip
            return rule.condition.evaluate(scope)

        rules = [r for r in self._rules(principal) if r.targets(kind, server, full)]
        flagged: _Rule | None = None
        for rule in (r for r in rules if r.effect == "deny"):
            if condition(rule) is False:
                continue
            if rule.monitor:
                flagged = flagged or rule
                continue
            return self._deny(rule.id, f"denied by rule {rule.id}")
        monitored_allow: _Rule | None = None
        failed: _Rule | None = None
        for rule in (r for r in rules if r.effect == "allow"):
            if condition(rule) is True:
                if flagged is not None:
                    return Decision(
                        allowed=True, rule=flagged.id, monitor=True,
                        explanation=f"allowed by rule {rule.id}; would be denied by rule {flagged.id} (monitor)",
                    )  # fmt: skip
                return Decision(allowed=True, rule=rule.id, explanation=f"allowed by rule {rule.id}")
            if rule.monitor:
                monitored_allow = monitored_allow or rule
            failed = failed or rule
        if monitored_allow is not None:
            return Decision(
                allowed=True, rule=monitored_allow.id, monitor=True,
                explanation=f"condition of rule {monitored_allow.id} not met (monitor)",
            )  # fmt: skip
        if self.config.default == "allow":
            return Decision(allowed=True, rule="", explanation="no rule matched; default allow")
        if failed is not None:
            return self._deny(failed.id, f"condition of rule {failed.id} not met; default deny")
        return self._deny("", "no rule matched; default deny")

    def _deny(self, rule: str, explanation: str) -> Decision:
        if self.config.mode == "monitor":
            return Decision(
                allowed=True, rule=rule, monitor=True, explanation=f"would be {explanation} (monitor)"
            )
        return Decision(allowed=False, rule=rule, explanation=explanation)

    def visible(self, principal: Principal, kind: Kind, server: str, name: str) -> bool:
        """Whether the target appears in the principal's list results (conditions are not evaluated)."""
        if not self.config.enabled or self.config.mode == "monitor":
            return True
        full = f"{server}{NAMESPACE_SEPARATOR}{name}" if kind in ("tool", "prompt") else name
        if kind == "resource" and uri_problem(name) is not None:
            return False
        rules = [r for r in self._rules(principal) if r.targets(kind, server, full)]
        if any(r.effect == "deny" and r.condition is None and not r.monitor for r in rules):
            return False
        return self.config.default == "allow" or any(r.effect == "allow" for r in rules)


def _principal_doc(principal: Principal, roles: frozenset[str]) -> dict[str, Any]:
    return {
        "name": principal.name,
        "roles": sorted(roles),
        "method": principal.method,
        "claims": dict(principal.claims),
    }
