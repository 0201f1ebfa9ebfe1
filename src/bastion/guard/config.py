"""`GuardrailsConfig`: which detectors run, with which options, and what happens to what they find.

The whole section is optional; its defaults are the "default guardrails" a security team would expect:

| detector (key)               | request (arguments) | response (results) | tool (definitions) |
|------------------------------|---------------------|--------------------|--------------------|
| `secrets`                    | redact              | redact             | flag               |
| `pii` (e-mail, phone, IP...) | flag                | flag               | off                |
| `pii.credit_card`, `pii.iban`, `pii.us_ssn`, `pii.national_id_*` | redact | redact | off    |
| `injection`                  | flag                | flag; high+: block | off                |
| `poisoning`                  | off                 | off                | block              |
| `arguments`                  | flag; high+: block  | off                | off                |
| `schema` (inputSchema, size) | block               | off                | off                |
| `classifier` (learned model) | off (opt-in)        | flag               | flag               |

Why: a credential must never cross the gateway in either direction, but removing it keeps the workflow going, so
secrets are redacted rather than refused. Contact data is everyday content, so it is only recorded; identifiers that
enable fraud (cards, bank accounts, national IDs) are redacted. Injection heuristics block only what is
unambiguous (`high` and `critical` findings: overrides, exfiltration links, hidden encoded instructions) and flag
the rest. A poisoned tool definition is refused. Dangerous arguments (deep or encoded traversal, credential files,
SSRF targets, command injection) and schema violations are refused before they reach a server; the ambiguous ones
(a single `../`, a log path) are flagged.

Example:
    guardrails:
      actions:
        pii: {response: redact}              # a key is a detector or `detector.type` (type may be a glob)
        injection: {response: {medium: flag, high: block}}   # severity thresholds
      overrides:                             # most specific wins: server+tool > tool > server > global
        - servers: [crm]
          actions: {pii: off}
        - servers: [shell]
          tools: [run_command]
          actions: {arguments: ask}
      arguments:
        roots: [/srv/project]
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bastion.guard.finding import Severity

ActionName = Literal["off", "flag", "redact", "ask", "block"]
"""What to do with a finding: `off` drops it (the detector does not run where everything is off)."""

ActionSpec = ActionName | dict[Severity, ActionName]
"""One action, or severity thresholds: `{medium: flag, high: block}` applies the entry with the highest threshold at
or below the finding's severity; a finding below every threshold is dropped."""

DETECTOR_NAMES = ("secrets", "pii", "injection", "poisoning", "arguments", "schema", "classifier")
"""The built-in detectors, in the order their findings are reported."""

PII_TYPES = (
    "email",
    "phone_number",
    "credit_card",
    "iban",
    "us_ssn",
    "ip_address",
    "national_id",
    "postal_address",
)
"""PII families that can be switched on and off (`national_id` covers every country's checksummed ID)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DirectionActions(_Model):
    """The action of one detector (or finding type) per direction; `None` inherits from a less specific key."""

    request: ActionSpec | None = None
    response: ActionSpec | None = None
    tool: ActionSpec | None = None


ActionEntry = ActionName | DirectionActions
"""A bare action applies to all three directions."""


def _default_actions() -> dict[str, ActionEntry]:
    fraud_ids = DirectionActions(request="redact", response="redact")
    return {
        "secrets": DirectionActions(request="redact", response="redact", tool="flag"),
        "pii": DirectionActions(request="flag", response="flag", tool="off"),
        "pii.credit_card": fraud_ids,
        "pii.iban": fraud_ids,
        "pii.us_ssn": fraud_ids,
        "pii.national_id_*": fraud_ids,
        "injection": DirectionActions(
            request="flag", response={Severity.LOW: "flag", Severity.HIGH: "block"}, tool="off"
        ),
        "poisoning": DirectionActions(request="off", response="off", tool="block"),
        "arguments": DirectionActions(
            request={Severity.LOW: "flag", Severity.HIGH: "block"}, response="off", tool="off"
        ),
        "schema": DirectionActions(request="block", response="off", tool="off"),
        # The learned model flags and never blocks by default: on sources it never saw it still fires on benign
        # prose (non-English especially, docs/guardrails-model.md), so its verdicts are evidence for an operator,
        # not a refusal. It reads results too: rules alone miss most injections worded in ways they were not
        # written for, and the model costs nothing where no cue marks a large result. Arguments stay opt-in: an
        # agent's own requests ("send the invoice to bob@...") read like orders to the model by nature.
        "classifier": DirectionActions(request="off", response="flag", tool={Severity.MEDIUM: "flag"}),
    }


_ACTION_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_*]+)?$")


def _check_action_keys(actions: dict[str, ActionEntry]) -> dict[str, ActionEntry]:
    for key in actions:
        if not _ACTION_KEY.fullmatch(key):
            raise ValueError(f"action key {key!r} must be `detector` or `detector.type`")
    return actions


class OverrideConfig(_Model):
    """Actions for some servers and/or tools. Globs; an empty list means "any"."""

    servers: list[str] = Field(default_factory=list)
    """Server name globs."""
    tools: list[str] = Field(default_factory=list)
    """Tool name globs (the upstream's own tool name, not namespaced)."""
    actions: dict[str, ActionEntry] = Field(default_factory=dict)
    """Same keys as `guardrails.actions`; only what is set here overrides."""
    ask_client: bool = False
    """For `ask` on these servers/tools: ask the calling client's user through elicitation (user consent) instead
    of waiting for an operator. Off by default: the agent under check never approves its own call."""

    @field_validator("actions")
    @classmethod
    def _check_keys(cls, actions: dict[str, ActionEntry]) -> dict[str, ActionEntry]:
        return _check_action_keys(actions)


class AllowEntry(_Model):
    """Known-benign findings on some servers/tools (see `bastion.guard.allowlist`). Globs; empty means "any"."""

    servers: list[str] = Field(default_factory=list)
    """Server name globs."""
    tools: list[str] = Field(default_factory=list)
    """Tool name globs (the upstream's own tool name)."""
    findings: list[str] = Field(default_factory=lambda: ["*"])
    """`detector` or `detector.type` globs, e.g. `injection.*`, `secrets.generic_secret`."""
    pattern: str | None = None
    """Python regex searched in the matched text; unset allows every matching finding."""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from None
        return pattern


class CustomPattern(_Model):
    """An organisation's own secret format, e.g. internal tokens."""

    type: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    """Finding type reported (and shown in `[REDACTED:<type>]`)."""
    pattern: str
    """Python regex; group 0 is the secret."""
    severity: Severity = Severity.HIGH

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regex: {exc}") from None
        return pattern


class SecretsConfig(_Model):
    enabled: bool = True
    generic: bool = True
    """Also report `password=`/`api_key:`-style assignments of high-entropy values (not only known formats)."""
    min_entropy: float = Field(default=3.0, ge=0, le=8)
    """Shannon entropy (bits per character) a generic assigned value needs to count as a secret."""
    allow: list[str] = Field(default_factory=list)
    """Regexes of values that are never secrets (documented test keys, placeholders)."""
    custom: list[CustomPattern] = Field(default_factory=list)


class PiiConfig(_Model):
    enabled: bool = True
    types: list[str] = Field(default_factory=lambda: [t for t in PII_TYPES if t != "postal_address"])
    """PII families to look for. `postal_address` (US street addresses) is off by default: it is the least
    precise."""
    phone_regions: list[str] = Field(default_factory=lambda: ["US", "GB", "DE", "FR", "IN", "AU", "CA"])
    """Regions tried for phone numbers written without a `+` country code."""

    @field_validator("types")
    @classmethod
    def _known(cls, types: list[str]) -> list[str]:
        unknown = sorted(set(types) - set(PII_TYPES))
        if unknown:
            raise ValueError(f"unknown PII types {unknown}; known: {list(PII_TYPES)}")
        return types


class InjectionConfig(_Model):
    enabled: bool = True
    decode: bool = True
    """Decode base64/hex blobs and look for instructions inside them."""
    max_decoded_blobs: int = Field(default=16, ge=0)
    """At most this many blobs are decoded per string (bounds the cost of adversarial input)."""


class ClassifierConfig(_Model):
    """The learned injection/poisoning model (`bastion.guard.detectors.classifier`, docs/guardrails-model.md)."""

    enabled: bool = True
    threshold: float = Field(default=0.7, gt=0, lt=1)
    """Model probability from which a window of a result or argument is reported (`medium`)."""
    high_threshold: float = Field(default=0.9, gt=0, lt=1)
    """Model probability from which the finding is `high` (blocked by default in results and tool definitions)."""
    tool_threshold: float = Field(default=0.8, gt=0, lt=1)
    """`threshold` for tool definitions: they are written as instructions to the model by nature, so the bar is
    higher there (docs/guardrails-model.md has the false-positive rates on real tools at each)."""
    whole_threshold: float = Field(default=0.8, gt=0, lt=1)
    """`threshold` for a small payload (one window in all) scored whole whether or not a cue marks it: without a
    cue there is less evidence, so the bar is higher."""
    whole_min_words: int = Field(default=4, ge=1)
    """A small payload of fewer words than this is not scored whole: an address, a placeholder or a two-word
    order ("mail ann@...") is too little text to judge (two Chinese or Japanese characters count as a word)."""
    min_chars: int = Field(default=80, ge=1)
    """Tool-definition strings shorter than this are not scored by the model (the `poisoning` rules still read
    them): a one-line imperative such as "Echo the text back." reads like a command to the model, and leaves no
    room for a second, hidden purpose."""


class PoisoningConfig(_Model):
    enabled: bool = True


class ArgumentsConfig(_Model):
    enabled: bool = True
    roots: list[str] = Field(default_factory=list)
    """Directories file paths in arguments must stay under (empty: no roots check). `~` is not expanded."""
    exec_tools: list[str] = Field(
        default_factory=lambda: [
            "*exec*",
            "*shell*",
            "*command*",
            "*terminal*",
            "*bash*",
            "*powershell*",
            "run",
            "run_*",
            "*_run",
            "*script*",
        ]
    )
    """Tool name globs treated as running shell commands: command chaining there is reported."""
    allow_hosts: list[str] = Field(default_factory=list)
    """Host globs that URL arguments may target even when private (internal services you mean to reach)."""
    block_private_networks: bool = True
    """Report URLs to loopback, link-local, private and reserved addresses (SSRF); metadata addresses always."""


class SchemaConfig(_Model):
    enabled: bool = True
    validate_arguments: bool = True
    """Validate request arguments against the tool's inputSchema when the caller passes one."""
    max_depth: int = Field(default=32, gt=0)
    """Deepest nesting of objects and arrays accepted."""
    max_string_chars: int = Field(default=1_000_000, gt=0)
    """Longest single string accepted."""
    max_total_chars: int = Field(default=4_000_000, gt=0)
    """Most characters of strings in one payload."""
    max_nodes: int = Field(default=100_000, gt=0)
    """Most values (objects, arrays, strings, numbers) in one payload."""


class GuardrailsConfig(_Model):
    enabled: bool = True
    failure_mode: Literal["closed", "open"] = "closed"
    """A detector that raises blocks the message (`closed`) or only flags the failure (`open`)."""
    rug_pull: Literal["hold", "flag", "off"] = "hold"
    """A tool whose definition differs from its pin is held back until approved (`hold`), served and reported
    (`flag`), or not pinned at all (`off`). See `bastion.guard.pins`."""
    normalize: bool = True
    """Also scan decoded, cleaned and joined views of each payload (`bastion.guard.views`): base64, hex, percent,
    `\\u` escapes, HTML entities, invisible characters, lookalikes, spaced and l33t letters, split values,
    credential-named fields and long object keys."""
    actions: dict[str, ActionEntry] = Field(default_factory=_default_actions)
    """Merged over the defaults: set only what you change."""
    overrides: list[OverrideConfig] = Field(default_factory=list)
    allow: list[AllowEntry] = Field(default_factory=list)
    """Known-benign findings per server/tool, dropped before actions (`bastion.guard.allowlist`)."""
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    pii: PiiConfig = Field(default_factory=PiiConfig)
    injection: InjectionConfig = Field(default_factory=InjectionConfig)
    poisoning: PoisoningConfig = Field(default_factory=PoisoningConfig)
    arguments: ArgumentsConfig = Field(default_factory=ArgumentsConfig)
    validation: SchemaConfig = Field(default_factory=SchemaConfig, alias="schema")
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    """The `schema:` section (inputSchema validation and size/depth limits)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("actions", mode="after")
    @classmethod
    def _merge_defaults(cls, actions: dict[str, ActionEntry]) -> dict[str, ActionEntry]:
        _check_action_keys(actions)
        merged = _default_actions()
        for key, entry in actions.items():
            base = merged.get(key)
            if isinstance(entry, DirectionActions) and isinstance(base, DirectionActions):
                # Merge per direction so `pii: {response: redact}` keeps the request/tool defaults.
                update = {d: v for d, v in entry.model_dump(exclude_none=True).items()}
                merged[key] = base.model_copy(update=update)
            else:
                merged[key] = entry
        return merged
