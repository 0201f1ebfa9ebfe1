"""Tool labels: which tools read private data, read untrusted content, send data out, write or destroy.

Rules:
- A tool's labels are the union of every `policy.flow.labels` entry matching its server and tool globs and, with
  `reference_labels`, the built-in entry of the reference server it belongs to.
- A reference server is recognised by the package in its `command`, `args` or `url` (data, not its name: a server
  called `fetch` that runs something else gets no reference labels).
- A tool that nothing names gets `policy.flow.unlabelled`.
- `suggest` only proposes labels for `bastion scan --labels`; nothing applies a suggestion by itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Final

from bastion.policy.flow_config import FlowConfig

REFERENCE: Final[dict[str, tuple[tuple[str, tuple[str, ...]], ...]]] = {
    "server-everything": (
        ("get-env", ("reads_private",)),
        ("gzip-file-as-resource", ("reads_untrusted", "egress")),
        ("*", ()),
    ),
    "mcp-server-time": (("*", ()),),
    "mcp-server-fetch": (("fetch", ("reads_untrusted", "egress")),),
    "server-filesystem": (
        ("read_*", ("reads_private",)),
        ("list_*", ("reads_private",)),
        ("search_files", ("reads_private",)),
        ("directory_tree", ("reads_private",)),
        ("get_file_info", ("reads_private",)),
        ("write_file", ("writes",)),
        ("edit_file", ("writes",)),
        ("create_directory", ("writes",)),
        ("move_file", ("writes", "destructive")),
    ),
    "mcp-server-git": (
        ("git_status", ("reads_private",)),
        ("git_diff*", ("reads_private",)),
        ("git_log", ("reads_private",)),
        ("git_show", ("reads_private",)),
        ("git_branch", ("reads_private",)),
        ("git_add", ("writes",)),
        ("git_commit", ("writes",)),
        ("git_create_branch", ("writes",)),
        ("git_checkout", ("writes",)),
        ("git_reset", ("writes", "destructive")),
    ),
    "server-memory": (
        ("read_graph", ("reads_private",)),
        ("search_nodes", ("reads_private",)),
        ("open_nodes", ("reads_private",)),
        ("create_*", ("writes",)),
        ("add_*", ("writes",)),
        ("delete_*", ("writes", "destructive")),
    ),
    "server-github": (
        ("get_*", ("reads_untrusted",)),
        ("list_*", ("reads_untrusted",)),
        ("search_*", ("reads_untrusted",)),
        ("create_*", ("egress", "writes")),
        ("update_*", ("egress", "writes")),
        ("add_*", ("egress", "writes")),
        ("push_*", ("egress", "writes")),
        ("merge_*", ("egress", "writes", "destructive")),
        ("fork_*", ("egress", "writes")),
    ),
    "server-slack": (
        ("slack_get_*", ("reads_untrusted",)),
        ("slack_list_*", ("reads_untrusted",)),
        ("slack_post_*", ("egress", "writes")),
        ("slack_reply_*", ("egress", "writes")),
        ("slack_add_*", ("egress", "writes")),
    ),
    "server-puppeteer": (("*", ("reads_untrusted", "egress")),),
    "server-postgres": (("query", ("reads_private",)),),
    "mcp-server-sqlite": (
        ("read_query", ("reads_private",)),
        ("list_tables", ("reads_private",)),
        ("describe_table", ("reads_private",)),
        ("write_query", ("writes", "destructive")),
        ("create_table", ("writes",)),
    ),
}
"""Labels of the tools of well-known MCP servers, keyed by the package marker that recognises them. A `*` entry
means "every other tool of this server is harmless" (so it does not fall back to `unlabelled`)."""

_MARKERS: Final = tuple(sorted(REFERENCE, key=len, reverse=True))


def reference_of(command: str | None, args: Iterable[str] = (), url: str | None = None) -> str | None:
    """The reference server a configured upstream runs, from its command line or URL; None when unknown."""
    text = " ".join([command or "", *args, url or ""]).lower().replace("_", "-")
    return next((marker for marker in _MARKERS if marker in text), None)


@dataclass(frozen=True, slots=True)
class ToolLabels:
    """The labels of every tool, resolved from config (pure: no I/O)."""

    config: FlowConfig
    references: Mapping[str, str]
    """Server name -> reference marker (see `reference_of`)."""

    def of(self, server: str, tool: str) -> tuple[str, ...]:
        """Labels of `tool` (the upstream's own name) on `server`, sorted."""
        found: set[str] = set()
        named = False
        for entry in self.config.labels:
            if any(fnmatchcase(server, g) for g in entry.servers) and any(
                fnmatchcase(tool, g) for g in entry.tools
            ):
                named = True
                found.update(entry.labels)
        marker = self.references.get(server) if self.config.reference_labels else None
        for glob, labels in REFERENCE.get(marker or "", ()):
            if fnmatchcase(tool, glob):
                named = True
                found.update(labels)
                break
        if not named:
            found.update(self.config.unlabelled)
        return tuple(sorted(found))


def references_from_servers(servers: Mapping[str, Any]) -> dict[str, str]:
    """Reference markers of configured servers (`ServerConfig`s, or their mappings in a YAML document)."""
    found: dict[str, str] = {}
    for name, server in servers.items():
        get = server.get if isinstance(server, Mapping) else lambda key, s=server: getattr(s, key, None)
        marker = reference_of(get("command"), [str(a) for a in get("args") or ()], get("url"))
        if marker is not None:
            found[name] = marker
    return found


_HINTS: Final[tuple[tuple[str, re.Pattern[str]], ...]] = (
    (
        "egress",
        re.compile(
            r"\b(send|post|e-?mail|mail|publish|upload|webhook|notify|tweet|share|comment|"
            r"message|reply|fetch|http|url|request)\w*",
            re.I,
        ),
    ),
    (
        "reads_untrusted",
        re.compile(
            r"\b(fetch|browse|navigate|web|url|html|download|scrape|inbox|issues?|"
            r"comments?|feed|rss|search the)\w*",
            re.I,
        ),
    ),
    (
        "reads_private",
        re.compile(
            r"\b(read|get|list|query|file|env|environment|secret|database|record|customer|"
            r"credential|history|profile|account)\w*",
            re.I,
        ),
    ),
    ("writes", re.compile(r"\b(write|create|update|edit|set|add|insert|save|move|commit|append)\w*", re.I)),
    (
        "destructive",
        re.compile(r"\b(delete|remove|drop|destroy|reset|kill|truncate|overwrite|purge)\w*", re.I),
    ),
)
"""Words in a tool's name or description that suggest a label (a starting point for a human, not a decision)."""


def suggest(
    definition: Mapping[str, Any], *, server: str = "", references: Mapping[str, str] = {}
) -> list[str]:
    """Labels `bastion scan --labels` proposes for one tool definition.

    The reference table wins when the server is a known one; otherwise the tool's annotations
    (`readOnlyHint`, `destructiveHint`, `openWorldHint`) and words in its name and description.
    """
    name = str(definition.get("name", ""))
    marker = references.get(server)
    if marker is not None:
        for glob, labels in REFERENCE[marker]:
            if fnmatchcase(name, glob):
                return sorted(labels)
    text = f"{name.replace('_', ' ').replace('-', ' ')} {definition.get('description') or ''}"
    found = {label for label, pattern in _HINTS if pattern.search(text)}
    annotations = definition.get("annotations")
    hints = annotations if isinstance(annotations, Mapping) else {}
    if hints.get("readOnlyHint") is True:
        found -= {"writes", "destructive"}
    if hints.get("destructiveHint") is True:
        found |= {"writes", "destructive"}
    if hints.get("openWorldHint") is True:
        found.add("reads_untrusted" if hints.get("readOnlyHint") is True else "egress")
    if hints.get("openWorldHint") is False:
        found -= {"egress", "reads_untrusted"}
    return sorted(found)


def suggestions(
    scanned: Iterable[tuple[str, Mapping[str, Any]]], servers: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """`policy.flow.labels` entries proposed for scanned tools ((server, definition) pairs), one per tool."""
    references = references_from_servers(servers)
    entries: list[dict[str, Any]] = []
    for server, definition in scanned:
        marker = references.get(server)
        entries.append(
            {
                "servers": [server],
                "tools": [str(definition.get("name", ""))],
                "labels": suggest(definition, server=server, references=references),
                "source": f"reference table ({marker})" if marker else "annotations and words (review)",
            }
        )
    return entries


def render_suggestions(entries: Sequence[Mapping[str, Any]]) -> str:
    """The suggestions as a YAML block to paste under `policy.flow.labels` (after review)."""
    lines = ["", "# Suggested tool labels for policy.flow.labels (review before use):"]
    for entry in entries:
        labels = ", ".join(entry["labels"])
        lines.append(f"- servers: [{entry['servers'][0]}]")
        lines.append(f"  tools: [{json.dumps(entry['tools'][0])}]")
        lines.append(f"  labels: [{labels}]   # {entry['source']}")
    return "\n".join(lines) + "\n"
