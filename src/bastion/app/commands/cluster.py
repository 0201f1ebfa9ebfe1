"""`bastion cluster status | reload`: look at the replicas sharing a state store, and make them re-read the policy.

Both talk to the configured state store only (Redis in a cluster), never to a replica's HTTP port, so they work
from any host that can reach Redis, and they see exactly what the replicas see of each other.
Exit codes: 0 success (and, for `reload`, every replica runs the policy of this host's file), 1 replicas disagree
or none answered, 2 bad config.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Final

import anyio

from bastion.cluster.member import RELOAD_TOPIC, policy_hash
from bastion.cluster.registry import RegistryStore, SessionRegistry
from bastion.config.model import BastionConfig
from bastion.errors import ConfigError
from bastion.state import open_state_store

WAIT_POLL_SECONDS: Final = 0.2
"""How often `reload --wait` re-reads the replicas' heartbeats."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `cluster status|reload` to the `bastion` command line."""
    cluster = subparsers.add_parser("cluster", help="replicas sharing this config's state store")
    commands = cluster.add_subparsers(dest="cluster_command", required=True)
    status = commands.add_parser("status", help="live replicas, their sessions and policy, cluster sessions")
    status.add_argument("--config", required=True, help="bastion.yaml (its `state:` and `policy` sections)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=run_cluster)
    reload = commands.add_parser("reload", help="make every replica re-read its policy file now")
    reload.add_argument("--config", required=True)
    reload.add_argument(
        "--wait", type=float, default=5.0, help="seconds to wait for every replica (default 5)"
    )
    reload.set_defaults(handler=run_cluster)


def _load(path: str) -> BastionConfig:
    from bastion.config import load_config

    config: BastionConfig = load_config(path)
    return config


def expected_policy(config: BastionConfig, path: str) -> str:
    """The hash of the policy this host's files hold (what every replica should run after a reload)."""
    from bastion.policy.holder import PolicyHolder

    if config.policy_file:
        return policy_hash(PolicyHolder.from_file(config.policy_file))
    if config.policy is not None:
        return policy_hash(PolicyHolder.from_file(path))
    return ""


def run_cluster(args: argparse.Namespace) -> int:
    """Handler of `bastion cluster ...`."""
    try:
        config = _load(args.config)
        if args.cluster_command == "status":
            return anyio.run(_status, config, args.json)
        return anyio.run(_reload, config, expected_policy(config, args.config), args.wait)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


async def _status(config: BastionConfig, as_json: bool) -> int:
    async with open_state_store(config.state) as store:
        registry = SessionRegistry(store, "")
        replicas = await registry.replicas()
        sessions = await registry.count()
    if as_json:
        print(json.dumps({"replicas": replicas, "sessions": sessions}, indent=2, sort_keys=True))
    else:
        print("\n".join(describe(replicas, sessions)))
    return 0 if replicas else 1


def describe(replicas: dict[str, dict[str, Any]], sessions: int) -> list[str]:
    """One line per replica, then the cluster's totals and whether the replicas run one policy."""
    now = time.time()
    lines = [
        f"{name}: {'ready' if r.get('ready') else 'NOT READY'}, {r.get('sessions', 0)} sessions, "
        f"policy {r.get('policy') or '-'}, host {r.get('host', '?')} pid {r.get('pid', '?')}, "
        f"up {now - float(r.get('started', now)):.0f}s, seen {now - float(r.get('seen', now)):.1f}s ago"
        for name, r in replicas.items()
    ]
    policies = {str(r.get("policy", "")) for r in replicas.values()}
    agree = "one policy" if len(policies) <= 1 else f"{len(policies)} DIFFERENT policies"
    lines.append(f"{len(replicas)} live replicas, {sessions} sessions, {agree}")
    return lines


async def _reload(config: BastionConfig, expected: str, wait: float) -> int:
    async with open_state_store(config.state) as store:
        await store.publish(RELOAD_TOPIC, {"policy": expected})
        replicas = await _wait_for(store, expected, wait)
    behind = sorted(name for name, r in replicas.items() if r.get("policy") != expected)
    for line in describe(replicas, sum(int(r.get("sessions", 0)) for r in replicas.values())):
        print(line)
    if not replicas:
        print("no live replica heard the reload", file=sys.stderr)
        return 1
    if behind:
        print(f"not running policy {expected or '-'}: {', '.join(behind)}", file=sys.stderr)
        return 1
    print(f"every replica runs policy {expected or '-'}")
    return 0


async def _wait_for(store: RegistryStore, expected: str, wait: float) -> dict[str, dict[str, Any]]:
    registry = SessionRegistry(store, "")
    deadline = time.monotonic() + wait
    while True:
        replicas = await registry.replicas()
        done = replicas and all(r.get("policy") == expected for r in replicas.values())
        if done or time.monotonic() >= deadline:
            return replicas
        await anyio.sleep(WAIT_POLL_SECONDS)  # heartbeats are records in the store: nothing to wait on
