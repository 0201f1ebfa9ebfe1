"""`FlowConfig`: the `policy.flow:` section: tool labels, flow rules over session taint, the data rule.

Example:
    policy:
      flow:
        enabled: true
        unlabelled: [egress]            # what a tool nobody labelled is treated as
        labels:
          - servers: [mail]
            tools: [send_*]
            labels: [egress]
        rules:
          - id: no-exfiltration
            when: 'session.tainted("private") && session.tainted("untrusted") && tool.labels.exists(l, l == "egress")'
            action: ask
        data_rule: deny                 # an argument carrying a fingerprinted private value
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

Label = Literal["reads_private", "reads_untrusted", "egress", "writes", "destructive"]
"""What a tool does with data: reads private data, reads content others control, sends data out, changes state,
destroys state."""

LABELS: Final[tuple[str, ...]] = ("reads_private", "reads_untrusted", "egress", "writes", "destructive")

FlowAction = Literal["deny", "ask", "flag"]
"""What a matching flow rule does: refuse the call, ask a human first, or let it through and record it."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelRuleConfig(_Model):
    """Labels for the tools matching both globs; every matching entry adds its labels."""

    servers: list[str] = Field(default_factory=lambda: ["*"])
    """Server name globs."""
    tools: list[str] = Field(default_factory=lambda: ["*"])
    """Globs on the upstream's own tool names (not namespaced)."""
    labels: list[Label]
    """Labels these tools get; an empty list marks them as labelled and harmless."""


class FlowRuleConfig(_Model):
    """A CEL condition over the call and the session's taint, and what to do when it holds."""

    id: str
    """Stable name, used in refusals and audit."""
    when: str
    """CEL with `tool` (`name`, `server`, `local`, `labels`), `args`, `principal` and `session`
    (`labels`, `tainted(label)`) in scope. A condition that fails to evaluate counts as matching (fail closed)."""
    action: FlowAction = "deny"
    servers: list[str] = Field(default_factory=lambda: ["*"])
    """Only calls to these servers (globs)."""


class FlowConfig(_Model):
    """Taint tracking across the calls of one session, and the rules that stop exfiltration chains."""

    enabled: bool = False
    """Track taint and apply the rules. Off: the flow stage does nothing (one attribute test per call)."""
    reference_labels: bool = True
    """Label the tools of known reference servers (server-everything, fetch, filesystem, ...) recognised by the
    package in their `command`/`args`; explicit `labels` entries add to these."""
    labels: list[LabelRuleConfig] = Field(default_factory=list)
    unlabelled: list[Label] = Field(default_factory=list)
    """Labels of a tool that neither `labels` nor the reference table names (e.g. `[egress]` to distrust them)."""
    rules: list[FlowRuleConfig] = Field(default_factory=list)
    data_rule: Literal["deny", "ask", "flag", "off"] = "deny"
    """A call whose arguments contain a value (or a fragment of one) from a `private` result of this session,
    whatever the tool's labels."""
    private_detectors: list[str] = Field(default_factory=lambda: ["secrets", "pii"])
    """Detectors whose findings in a result mark the session `private` (and whose values are fingerprinted)."""
    untrusted_detectors: list[str] = Field(default_factory=lambda: ["injection"])
    """Detectors whose findings in a result mark the session `untrusted`."""
    ttl_seconds: float = Field(default=86400.0, gt=0)
    """How long a session's taint is kept after its last change."""
    failure_mode: Literal["closed", "open"] = "closed"
    """When the taint cannot be read or written (store down): refuse the call, or let it through."""
