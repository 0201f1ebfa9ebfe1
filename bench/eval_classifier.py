"""`make eval`'s section on the learned `classifier` detector.

Prints, next to the tuning-set figures that `eval_guardrails.py` measures through the real `Guard`:
- the leave-one-source-out and validation figures recorded by `make train-guard` inside the shipped weights' metadata
  (`served` = both stages as the gateway runs them; `model` = every window scored);
- false positives, measured now, on benign material the model never saw: the live `tools/list` of the reference
  servers installed here (server-everything over stdio, mcp-server-time), Python standard-library docstrings
  (documents) and standard-library source files (code).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import anyio

from bastion.guard.detectors.classifier import default_model_path
from bastion.guard.detectors.textmodel import load_model
from bastion.guard.engine import Guard

ROOT = Path(__file__).resolve().parent.parent
EVERYTHING_JS = ROOT / "tests/peers/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
STDLIB_MODULES = (
    "argparse asyncio.base_events collections csv dataclasses datetime decimal email.message functools gettext "
    "http.client http.server imaplib inspect ipaddress json.decoder logging.handlers mailbox os pathlib pickle "
    "pprint shutil smtplib socket sqlite3.dbapi2 ssl statistics subprocess tarfile tempfile textwrap threading "
    "tkinter.filedialog typing unittest.case urllib.parse urllib.request uuid venv wave zipfile"
).split()
"""Standard-library modules whose docstrings and source are the benign documents and code (none is in training)."""


def _line(name: str, m: dict[str, Any]) -> str:
    def f(key: str) -> str:
        v = m.get(key)
        return "  -  " if v is None or v != v else f"{v:.3f}"

    return (
        f"   {name:<26} P={f('P')} R={f('R')} F1={f('F1')} FPR={f('FPR')}  "
        f"(tp={m['tp']} fp={m['fp']} fn={m['fn']} tn={m['tn']})"
    )


async def _list_tools() -> list[dict[str, Any]]:
    from mcp import Client, StdioServerParameters

    servers = [StdioServerParameters(command=sys.executable, args=["-m", "mcp_server_time"])]
    if EVERYTHING_JS.exists():
        servers.append(StdioServerParameters(command="node", args=[str(EVERYTHING_JS), "stdio"]))
    tools: list[dict[str, Any]] = []
    for params in servers:
        with anyio.fail_after(30):
            async with Client(params) as client:
                listed = await client.list_tools()
        tools.extend(t.model_dump(mode="json", exclude_none=True) for t in listed.tools)
    return tools


def _stdlib() -> tuple[list[str], list[str]]:
    docs: list[str] = []
    code: list[str] = []
    for name in STDLIB_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        parts = [module.__doc__ or ""]
        parts += [
            obj.__doc__
            for _, obj in inspect.getmembers(module)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", "") == name
        ]
        docs.append("\n\n".join(p for p in parts if isinstance(p, str) and p))
        code.append(inspect.getsource(module))
    return [d for d in docs if d], code


def report_classifier(guard: Guard) -> None:
    """Print the recorded generalisation figures and measure false positives on unseen benign material."""
    model = load_model(default_model_path())
    figures = model.meta.get("figures", {})
    assert isinstance(figures, dict)
    print(f"\n== classifier: shipped model {default_model_path().name} (design {model.meta.get('design')})")
    print(
        "   leave-one-source-out (recorded by make train-guard; trained without the source, scored on all of it):"
    )
    for source, block in sorted(figures.get("loso", {}).items()):
        print(_line(f"{source} served", block[f"served:{source}"]))
        print(_line(f"{source} model-only", block[f"model:{source}"]))
    for name in ("tuning", "validation"):
        print(f"   {name} split of the training sources (recorded; served):")
        for key, block in sorted(figures.get(name, {}).items()):
            if key.startswith("served:"):
                print(_line(key.removeprefix("served:"), block))
    print(
        "   false positives on benign material never trained on (measured now, real Guard; `high` is what the default actions block):"
    )
    tools = [] if os.environ.get("BASTION_EVAL_NO_PEERS") else anyio.run(_list_tools)
    docs, code = _stdlib()
    for label, direction, payloads in (
        ("reference tools/list", "tool", tools),
        ("stdlib docstrings", "response", [{"content": [{"type": "text", "text": d}]} for d in docs]),
        ("stdlib source", "response", [{"content": [{"type": "text", "text": c}]} for c in code]),
    ):
        flagged = blocked = 0
        for payload in payloads:
            result = guard.inspect(direction, payload, server="eval")
            hits = [f for f in result.findings if f.detector == "classifier"]
            flagged += bool(hits)
            blocked += any(f.severity in ("high", "critical") for f in hits)
        n = max(len(payloads), 1)
        print(
            f"   {label:<26} {len(payloads):4} items  fired {flagged} ({flagged / n:.3f})  "
            f"high (blocked by default) {blocked} ({blocked / n:.3f})"
        )
