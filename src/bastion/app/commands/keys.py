"""`bastion keys create | list | revoke`: manage API keys in the configured state store.

The key is printed once by `create`; nothing else ever shows it again (only its salted hash is stored).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio

from bastion.app.commands.offline import cli_user, record_offline
from bastion.audit.admin import key_notice
from bastion.auth.apikeys import ApiKeyStore, parse_duration
from bastion.config.loader import load_config
from bastion.errors import BastionError, ConfigError
from bastion.pipeline.notice import Notice
from bastion.state import StateConfig, open_state_store


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `keys create|list|revoke` to the `bastion` command line."""
    keys = subparsers.add_parser("keys", help="manage API keys")
    commands = keys.add_subparsers(dest="keys_command", required=True)
    create = commands.add_parser("create", help="create a key (printed once)")
    create.add_argument("--config", required=True, help="bastion.yaml (its `state:` section)")
    create.add_argument("--principal", required=True, help="principal the key authenticates as")
    create.add_argument("--roles", default="", help="comma-separated roles")
    create.add_argument("--expires", default=None, help="lifetime such as 30d, 12h, 15m (default: never)")
    create.set_defaults(handler=run_keys)
    listing = commands.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--config", required=True)
    listing.set_defaults(handler=run_keys)
    revoke = commands.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("--config", required=True)
    revoke.add_argument("id", help="key id (the part after `bst_`)")
    revoke.set_defaults(handler=run_keys)


def run_keys(args: argparse.Namespace) -> int:
    """Handler of `bastion keys ...`."""
    try:
        # The one config loader every command uses: relative paths are anchored at the config file's folder.
        config = load_config(args.config).state
        expires = parse_duration(args.expires) if getattr(args, "expires", None) else None
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result: int = anyio.run(_keys, args, config, expires)
    return result


async def _keys(args: argparse.Namespace, config: StateConfig, expires: float | None) -> int:
    async with open_state_store(config) as store:
        keys = ApiKeyStore(store)
        if args.keys_command == "create":
            roles = [r.strip() for r in args.roles.split(",") if r.strip()]
            key, info = await keys.create(args.principal, roles, expires_in=expires)
            if not await _audited(
                args, key_notice("created", info.key_id, by=cli_user(), via="cli", info=info)
            ):
                await keys.revoke(info.key_id)  # fail closed: no key exists that the trail does not know of
                return 1
            print(key)
            print(
                f"created key {info.key_id} for {info.principal}; store it now, it is not shown again",
                file=sys.stderr,
            )
            return 0
        if args.keys_command == "list":
            listed: list[dict[str, Any]] = [info.to_dict() for info in await keys.list()]
            print(json.dumps(listed, indent=2))
            return 0
        if await keys.revoke(args.id):
            print(f"revoked {args.id}")
            audited = await _audited(args, key_notice("revoked", args.id, by=cli_user(), via="cli"))
            return 0 if audited else 1
        print(f"no key {args.id}", file=sys.stderr)
        return 1


async def _audited(args: argparse.Namespace, notice: Notice) -> bool:
    """Record a key change in the audit trail; False (and why, on stderr) when it could not be recorded."""
    try:
        await record_offline(args.config, notice)
    except (BastionError, ConfigError) as exc:
        print(f"error: the audit trail could not record this: {exc}", file=sys.stderr)
        return False
    return True
