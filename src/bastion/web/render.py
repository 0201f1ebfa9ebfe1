"""HTML rendering for the dashboard: the Jinja2 environment, its filters, and JSON shown with findings marked.

Rules:
- Autoescaping is on for every template; the only `Markup` built in Python is made of escaped pieces here.
- A JSON value is shown as a tree whose strings carry their JSON path, so findings (which name a path, never the
  matched text) can be highlighted, and `[REDACTED:<type>]` spans are shown as redactions, not as content.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from markupsafe import Markup, escape

from bastion.guard.payload import format_path

if TYPE_CHECKING:
    # Jinja2 costs about 2 MB of RSS: it is imported when the first page renders, not when the gateway starts.
    from jinja2 import Environment

TEMPLATES: Final = Path(__file__).parent / "templates"
STATIC: Final = Path(__file__).parent / "static"
REDACTED: Final = re.compile(r"\[REDACTED:[A-Za-z0-9_.\-]+\]")
"""The marker the guard leaves where it removed a span."""
MAX_NODES: Final = 5000
"""Values rendered in one JSON tree before the rest is summarised (arguments are capped by audit anyway)."""


def timestamp(value: Any) -> str:
    """Epoch seconds as `YYYY-MM-DD HH:MM:SS UTC`."""
    try:
        moment = dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(value: Any) -> str:
    """Epoch seconds as `HH:MM:SS` (UTC), for dense tables."""
    try:
        return dt.datetime.fromtimestamp(float(value), tz=dt.UTC).strftime("%H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _string_html(text: str, marked: bool) -> Markup:
    pieces: list[Markup] = []
    pos = 0
    for match in REDACTED.finditer(text):
        pieces.append(escape(text[pos : match.start()]))
        pieces.append(
            Markup('<span class="redacted" title="removed by a guardrail">{}</span>').format(match[0])
        )
        pos = match.end()
    pieces.append(escape(text[pos:]))
    inner = Markup('"{}"').format(Markup("").join(pieces))
    if marked:
        return Markup('<mark class="finding">{}</mark>').format(inner)
    return Markup('<span class="s">{}</span>').format(inner)


def json_html(value: Any, highlights: Iterable[str] = ()) -> Markup:
    """Pretty JSON as escaped HTML; strings at a path in `highlights` are marked, redactions are labelled."""
    marked = set(highlights)
    out: list[Markup | str] = []
    budget = [MAX_NODES]

    def emit(node: Any, parts: tuple[str | int, ...], indent: int) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            out.append(Markup('<span class="more">…</span>'))
            return
        pad = "  " * (indent + 1)
        if isinstance(node, dict):
            if not node:
                out.append("{}")
                return
            out.append("{\n")
            for i, (key, child) in enumerate(node.items()):
                out.append(Markup('{}<span class="k">{}</span>: ').format(pad, json.dumps(str(key))))
                emit(child, (*parts, str(key)), indent + 1)
                out.append(",\n" if i < len(node) - 1 else "\n")
            out.append("  " * indent + "}")
        elif isinstance(node, list):
            if not node:
                out.append("[]")
                return
            out.append("[\n")
            for i, child in enumerate(node):
                out.append(pad)
                emit(child, (*parts, i), indent + 1)
                out.append(",\n" if i < len(node) - 1 else "\n")
            out.append("  " * indent + "]")
        elif isinstance(node, str):
            out.append(_string_html(node, format_path(parts) in marked))
        else:
            out.append(Markup('<span class="v">{}</span>').format(json.dumps(node)))

    emit(value, (), 0)
    return Markup("").join(escape(p) if not isinstance(p, Markup) else p for p in out)


def environment() -> Environment:
    """The dashboard's Jinja2 environment (autoescaped, strict about undefined names)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["timestamp"] = timestamp
    env.filters["clock"] = clock
    env.filters["pretty"] = pretty
    env.filters["json_html"] = json_html
    return env
