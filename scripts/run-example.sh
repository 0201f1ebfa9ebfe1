#!/usr/bin/env bash
# `make run`: start the bundled HTTP upstream (server-everything, loopback only), then Bastion in front of it all.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_DIR=tests/peers/node/node_modules
NODE="$NODE_DIR/.bin/node"
[ -x "$NODE" ] || NODE=node
PORT=3001 NODE_OPTIONS="--require $PWD/tests/peers/loopback.cjs" \
  "$NODE" "$NODE_DIR/@modelcontextprotocol/server-everything/dist/index.js" streamableHttp \
  > .stamps/everything-http.log 2>&1 &
UPSTREAM=$!
trap 'kill $UPSTREAM 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 50); do
  (exec 3<>/dev/tcp/127.0.0.1/3001) 2>/dev/null && break
  sleep 0.2
done
echo "Bastion: MCP endpoint http://127.0.0.1:8765/mcp (legacy SSE: /sse), health: /healthz, /readyz"
.venv/bin/bastion serve --config "${BASTION_CONFIG:-examples/bastion.yaml}"
