"""`bastion policy test`: one decision and its explanation as JSON, for CI pipelines of policy repos.
`bastion policy reload`: every running replica re-reads its policy file now (see `bastion.app.commands.cluster`).

Exit status of `test`: 0 allowed, 1 denied (or, with `--history`, refused or held for approval by a flow rule),
2 the policy, the arguments or the history are invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bastion.errors import ConfigError
from bastion.policy.engine import Kind
from bastion.policy.holder import load_policy_file
from bastion.policy.names import is_canonical
from bastion.types import Principal


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `policy test` to the `bastion` command line."""
    policy = subparsers.add_parser("policy", help="work with the authorization policy")
    commands = policy.add_subparsers(dest="policy_command", required=True)
    test = commands.add_parser("test", help="print the decision for one call (exit 0 allowed, 1 denied)")
    test.add_argument("--config", required=True, help="bastion.yaml (its `policy:` section) or a policy file")
    test.add_argument("--principal", required=True, help="principal name")
    test.add_argument(
        "--roles", default="", help="comma-separated roles the principal brings (API key, token)"
    )
    target = test.add_mutually_exclusive_group(required=True)
    target.add_argument("--tool", help="namespaced tool name, e.g. github__create_issue")
    target.add_argument("--prompt", help="namespaced prompt name")
    target.add_argument("--resource", help="resource URI")
    test.add_argument("--server", default="", help="server of a --resource (default: none)")
    test.add_argument("--args", default="{}", help="tool arguments as a JSON object")
    test.add_argument(
        "--history",
        help="earlier calls of the session (JSON array or JSON Lines; hand-written or `audit export`): "
        "replayed to judge --tool under `policy.flow` and explain the chain",
    )
    test.set_defaults(handler=run_test)
    reload = commands.add_parser("reload", help="make every running replica re-read its policy file now")
    reload.add_argument("--config", required=True, help="bastion.yaml (its `state:` reaches the replicas)")
    reload.add_argument(
        "--wait", type=float, default=5.0, help="seconds to wait for every replica (default 5)"
    )
    reload.set_defaults(handler=run_reload)


def run_reload(args: argparse.Namespace) -> int:
    """Handler of `bastion policy reload`: the same as `bastion cluster reload` (one replica or many)."""
    from bastion.app.commands.cluster import run_cluster

    args.cluster_command = "reload"
    return run_cluster(args)


def _split(name: str) -> tuple[str, str]:
    server, sep, local = name.partition("__")
    if not sep or not server or not local:
        raise ValueError(f"{name!r} is not a namespaced <server>__<name>")
    return server, local


def run_test(args: argparse.Namespace) -> int:
    """Handler of `bastion policy test`."""
    try:
        engine = load_policy_file(args.config)
    except ConfigError as exc:
        print(f"invalid policy: {exc}", file=sys.stderr)
        return 2
    try:
        arguments: Any = json.loads(args.args)
        if not isinstance(arguments, dict):
            raise ValueError("--args must be a JSON object")
        kind: Kind
        if args.tool is not None:
            kind, (server, name) = "tool", _split(args.tool)
        elif args.prompt is not None:
            kind, (server, name) = "prompt", _split(args.prompt)
        else:
            kind, server, name = "resource", args.server, args.resource
    except ValueError as exc:
        print(f"invalid arguments: {exc}", file=sys.stderr)
        return 2
    roles = frozenset(r.strip() for r in args.roles.split(",") if r.strip())
    principal = Principal(name=args.principal, roles=roles, method="cli")
    decision = engine.decide(principal, kind, server, name, arguments)
    report = {
        **decision.to_dict(),
        "principal": principal.name,
        "roles": sorted(engine.roles_of(principal)),
        "kind": kind,
        "server": server,
        "name": name,
        "canonical": kind == "resource" or is_canonical(f"{server}__{name}"),
        "visible": engine.visible(principal, kind, server, name),
    }
    allowed = decision.allowed
    if args.history is not None and kind == "tool":
        try:
            from bastion.policy.flow_cli import explain_flow

            report["flow"] = explain_flow(
                engine, args.config, args.history, principal, server, name, arguments
            )
        except ConfigError as exc:
            print(f"invalid history: {exc}", file=sys.stderr)
            return 2
        allowed = allowed and report["flow"]["action"] in ("allow", "flag")
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0 if allowed else 1
