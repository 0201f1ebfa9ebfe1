"""Guard throughput per core and latency on realistic tool results, with every default detector on.

Payloads (built locally, nothing downloaded):
- code: Python standard-library source, as the text of a tool result;
- json: an API-style list of records (ids, URLs, timestamps, e-mail addresses, free text) as `structuredContent`;
- prose: clean e-mails and tables from the tuning corpora (or stdlib docstrings when the corpora are absent);
- mixed: the three above, one content block each.

Prints MB/s (payload bytes of JSON per second of `Guard.inspect`, one thread) per payload kind, and p50/min of
64 KB and 1 KB tool results. Run: `.venv/bin/python bench/guard_throughput.py [--seconds 2] [--backend hyperscan|re2|re]`.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bastion.guard.config import GuardrailsConfig
from bastion.guard.engine import Guard

ROOT = Path(__file__).resolve().parent.parent
CORPORA = Path(os.environ.get("BASTION_CORPORA", ROOT.parent / "shared" / "corpora"))
SIZE = 64 * 1024


def code_text(size: int) -> str:
    import asyncio.base_events
    import email.message
    import http.client
    import json.decoder
    import logging.handlers
    import urllib.parse

    modules = [asyncio.base_events, email.message, http.client, json.decoder, logging.handlers, urllib.parse]
    text = "\n".join(inspect.getsource(m) for m in modules)
    return (text * (size // len(text) + 1))[:size]


def docs_text(size: int) -> str:
    """English technical prose: docstrings of standard-library modules and their functions."""
    import argparse as a
    import asyncio as b
    import collections as c
    import email as d
    import logging as e
    import pathlib as f
    import subprocess as g
    import unittest as h

    parts: list[str] = []
    for module in (a, b, c, d, e, f, g, h, json, inspect, statistics, random):
        parts.append(module.__doc__ or "")
        for _, obj in inspect.getmembers(module):
            doc = getattr(obj, "__doc__", None)
            if isinstance(doc, str) and len(doc) > 80 and (inspect.isfunction(obj) or inspect.isclass(obj)):
                parts.append(doc)
    text = "\n\n".join(dict.fromkeys(parts))
    return (text * (size // len(text) + 1))[:size]


def prose_text(size: int) -> str:
    """Tool data full of personal data: the clean e-mails, calendars and tables of the injection corpora."""
    parts: list[str] = []
    for name in ("inj_agentdojo.jsonl", "inj_bipia.jsonl"):
        path = CORPORA / name
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                if row["label"] == 0 and not row["category"].startswith("code"):
                    parts.append(row["text"])
    if not parts:
        parts = [m.__doc__ or "" for m in (json, inspect, argparse, random, statistics)]
    text = "\n\n".join(parts)
    return (text * (size // len(text) + 1))[:size]


def json_records(size: int) -> dict[str, Any]:
    rng = random.Random(7)
    words = "the report was updated after review and shipped to production with minor fixes".split()
    records: list[dict[str, Any]] = []
    while len(orjson.dumps(records)) < size:
        n = len(records)
        records.append(
            {
                "id": 100000 + n,
                "number": rng.randint(1, 5000),
                "title": " ".join(rng.choice(words) for _ in range(6)),
                "state": rng.choice(["open", "closed"]),
                "url": f"https://api.example.com/repos/acme/widgets/issues/{n}",
                "user": {
                    "login": f"user{n % 97}",
                    "site_admin": False,
                    **({"email": f"u{n}@example.com"} if n % 10 == 0 else {}),
                },
                "labels": [
                    {"name": rng.choice(["bug", "docs", "ci"]), "color": f"{rng.randrange(16**6):06x}"}
                ],
                "created_at": f"2025-0{1 + n % 9}-1{n % 10}T12:{n % 60:02d}:00Z",
                "sha": f"{rng.getrandbits(160):040x}",
                "body": " ".join(rng.choice(words) for _ in range(24)),
            }
        )
    return {"content": [{"type": "text", "text": "issues"}], "structuredContent": {"items": records}}


def text_result(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": False}


def measure(guard: Guard, payload: Any, seconds: float) -> tuple[float, list[float]]:
    size = len(orjson.dumps(payload))
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(timings) < 20:
        started = time.perf_counter()
        guard.inspect("response", payload, server="bench", tool="bench")
        timings.append(time.perf_counter() - started)
    mb_s = size * len(timings) / sum(timings) / 1e6
    return mb_s, timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent per payload kind")
    parser.add_argument("--backend", choices=("hyperscan", "re2", "re"), default=None)
    parser.add_argument(
        "--classifier", choices=("on", "off"), default="on", help="the learned model detector (on by default)"
    )
    args = parser.parse_args()
    model = {"classifier": {"enabled": args.classifier == "on"}}
    all_on = {
        "actions": {
            name: {"request": "flag", "response": "flag", "tool": "flag"}
            for name in ("secrets", "pii", "injection", "poisoning", "arguments", "schema", "classifier")
        },
        "pii": {
            "types": [
                "email",
                "phone_number",
                "credit_card",
                "iban",
                "us_ssn",
                "ip_address",
                "national_id",
                "postal_address",
            ]
        },
    }
    guards = {
        "default": Guard(GuardrailsConfig.model_validate(model), backend=args.backend),
        "every detector": Guard(GuardrailsConfig.model_validate({**all_on, **model}), backend=args.backend),
    }
    payloads = {
        "code 64KB": text_result(code_text(SIZE)),
        "json 64KB": json_records(SIZE),
        "prose 64KB": text_result(docs_text(SIZE)),
        "pii-dense 64KB": text_result(prose_text(SIZE)),
    }
    payloads["mixed 192KB"] = {
        "content": [payloads["code 64KB"]["content"][0], payloads["prose 64KB"]["content"][0]],
        "structuredContent": payloads["json 64KB"]["structuredContent"],
    }
    small = 1024
    payloads["code 1KB"] = text_result(code_text(small))
    payloads["json 1KB"] = json_records(small)
    payloads["prose 1KB"] = text_result(docs_text(small))
    print(
        f"backend: {guards['default'].backend}; classifier {args.classifier}; python {sys.version.split()[0]}; "
        "one thread"
    )
    for label, guard in guards.items():
        print(f"\n== {label} detector set (response direction)")
        for name, payload in payloads.items():
            mb_s, timings = measure(guard, payload, args.seconds)
            p50 = statistics.median(timings) * 1000
            best = min(timings) * 1000
            found = len(guard.inspect("response", payload).findings)
            print(
                f"   {name:<15} {mb_s:8.1f} MB/s   p50 {p50:7.3f} ms   min {best:7.3f} ms   "
                f"{found:4} findings   ({len(timings)} runs)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
