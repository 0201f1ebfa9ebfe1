"""Guard throughput per core and latency on realistic tool results, with every detector on: the reference for the
guardrail budget of issues 17 and 18.

Payloads (built locally, nothing downloaded), each at 1 KB and 64 KB:
- prose: English technical prose (standard-library docstrings), as the text of a tool result;
- code: Python standard-library source, as the text of a tool result;
- json: an API-style list of records (ids, URLs, timestamps, e-mail addresses, free text) as `structuredContent`;
- pii-dense: clean e-mails, calendars and tables of the tuning corpora (names, addresses, dates, numbers);
- mixed 192KB: code, prose and json in one result.

Prints the model load time, the RSS the guard adds (import, compile, first scans), and per payload MB/s (payload
bytes of JSON per second of `Guard.inspect`, one thread), p50 and min.
Run: `.venv/bin/python bench/guard_throughput.py [--seconds 2] [--set every|default|both] [--only 'json 64']`.
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


def measure(guard: Any, payload: Any, seconds: float) -> tuple[float, list[float]]:
    size = len(orjson.dumps(payload))
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(timings) < 20:
        started = time.perf_counter()
        guard.inspect("response", payload, server="bench", tool="bench")
        timings.append(time.perf_counter() - started)
    mb_s = size * len(timings) / sum(timings) / 1e6
    return mb_s, timings


def rss_kb() -> int:
    """Resident set size of this process (Linux `/proc`; 0 elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


# Spelled out rather than built from guard.config.DETECTOR_NAMES/PII_TYPES: importing bastion here would count
# pydantic and the config models in the RSS this bench attributes to the guard.
EVERY_DETECTOR: dict[str, Any] = {
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
"""Every built-in detector on, acting on results (the budget of issues 17 and 18 is measured with this set)."""


def payloads(sizes: tuple[int, ...]) -> dict[str, Any]:
    """`<kind> <size>` -> tool result, for the four kinds of the budget (and a mixed 192 KB result)."""
    out: dict[str, Any] = {}
    for size in sizes:
        label = f"{size // 1024}KB"
        out[f"prose {label}"] = text_result(docs_text(size))
        out[f"code {label}"] = text_result(code_text(size))
        out[f"json {label}"] = json_records(size)
        out[f"pii-dense {label}"] = text_result(prose_text(size))
    if SIZE in sizes:
        out["mixed 192KB"] = {
            "content": [out["code 64KB"]["content"][0], out["prose 64KB"]["content"][0]],
            "structuredContent": out["json 64KB"]["structuredContent"],
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time spent per payload kind")
    parser.add_argument("--backend", choices=("hyperscan", "re2", "re"), default=None)
    parser.add_argument(
        "--classifier", choices=("on", "off"), default="on", help="the learned model detector (on by default)"
    )
    parser.add_argument(
        "--set", choices=("every", "default", "both"), default="both", help="detector sets to run"
    )
    parser.add_argument(
        "--only", default=None, help="run only payloads whose name contains this (e.g. `json 64`)"
    )
    args = parser.parse_args()
    cases = {k: v for k, v in payloads((1024, SIZE)).items() if args.only is None or args.only in k}
    model = {"classifier": {"enabled": args.classifier == "on"}}

    # Model load and memory: measured before anything of the guard is imported (payloads are built already).
    # The config models (pydantic) are loaded by every gateway whether or not guardrails are on: counted apart.
    bare = rss_kb()
    from bastion.guard.config import GuardrailsConfig

    before = rss_kb()
    started = time.perf_counter()
    from bastion.guard.detectors.classifier import ClassifierDetector

    ClassifierDetector()
    load_s = time.perf_counter() - started
    from bastion.guard.engine import Guard

    sets: dict[str, Any] = {}
    if args.set in ("every", "both"):
        sets["every detector"] = GuardrailsConfig.model_validate({**EVERY_DETECTOR, **model})
    if args.set in ("default", "both"):
        sets["default"] = GuardrailsConfig.model_validate(model)
    guards = {label: Guard(config, backend=args.backend) for label, config in sets.items()}
    for guard in guards.values():
        for payload in cases.values():
            guard.inspect("response", payload)
    after = rss_kb()
    first = next(iter(guards.values()))
    print(
        f"backend: {first.backend}; classifier {args.classifier}; python {sys.version.split()[0]}; one thread\n"
        f"model load (import + weights + checks): {load_s * 1000:.0f} ms; "
        f"RSS added by the guard (import, compile, first scans): {(after - before) / 1024:.1f} MB "
        f"({(after - bare) / 1024:.1f} MB with pydantic and the config models)"
    )
    for label, guard in guards.items():
        print(f"\n== {label} detector set (response direction)")
        for name, payload in cases.items():
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
