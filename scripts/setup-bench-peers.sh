#!/usr/bin/env bash
# Install the proxies `make bench` compares Bastion with, each in its own virtualenv under .peers/ (git-ignored),
# because their dependency pins clash with ours and with each other (mcp 1.x vs 2.x, httpx vs httpx2).
# Idempotent: a venv that already has the pinned version is left alone; a missing or different one is (re)built.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
PEERS=.peers
mkdir -p "$PEERS"

# venv name, pip requirement, distribution name, expected version
PINS=(
  "venv-mcp-proxy mcp-proxy==0.13.0 mcp-proxy 0.13.0"
  "venv-fastmcp fastmcp==4.2.3 fastmcp 4.2.3"
  "venv-contextforge mcp-contextforge-gateway==1.0.7.post20260921 mcp-contextforge-gateway 1.0.7.post20260921"
)

installed_version() {  # prints the installed version of a distribution in a venv, or nothing
  "$1/bin/python" - "$2" 2>/dev/null <<'EOF' || true
import importlib.metadata, sys
try:
    print(importlib.metadata.version(sys.argv[1]))
except importlib.metadata.PackageNotFoundError:
    pass
EOF
}

for pin in "${PINS[@]}"; do
  read -r name requirement dist version <<<"$pin"
  venv="$PEERS/$name"
  if [[ -x "$venv/bin/python" && "$(installed_version "$venv" "$dist")" == "$version" ]]; then
    echo "bench peer $dist $version: present in $venv"
    continue
  fi
  echo "bench peer $dist $version: installing into $venv"
  test -x "$venv/bin/python" || "$PYTHON" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q "$requirement"
  got="$(installed_version "$venv" "$dist")"
  [[ "$got" == "$version" ]] || { echo "error: $dist in $venv is '$got', expected $version" >&2; exit 1; }
done
