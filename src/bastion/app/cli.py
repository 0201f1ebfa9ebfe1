"""The `bastion` command: serve, stdio, check, and the subcommands each package registers.

Part of the composition root: `serve` and `stdio` build the runtime (`app/runtime.py`) and hand it to a server.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from bastion.errors import BastionError, ConfigError

logger = logging.getLogger("bastion.cli")

_SUBCOMMAND_MODULES = (
    "bastion.app.commands.keys",
    "bastion.app.commands.policy",
    "bastion.app.commands.guard",
    "bastion.app.commands.tools",
    "bastion.app.commands.audit",
    "bastion.app.commands.cluster",
)
"""Packages that add their own subcommands (`keys`, `policy`, `guard`, `tools`, `audit`, `cluster`)."""


def _setup_logging(level: str, *, stream: Any = sys.stderr, log_format: str = "text") -> None:
    if log_format == "json":
        from bastion.telemetry.logs import setup_logging

        setup_logging(level, log_format="json", stream=stream)
        return
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        stream=stream,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _load(path: str) -> Any:
    from bastion.config import load_config

    return load_config(path)


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    print(json.dumps(config.model_dump(mode="json"), indent=2, default=str))
    return 0


def _header_timeout_hook(gateway: Any) -> Any:
    """Report a connection cut off for slow headers as a `PROTOCOL_ERROR` notice (audited)."""
    from bastion.pipeline.notice import Notice, NoticeKind

    def report(remote: str) -> None:
        detail = {"reason": "header_timeout", "status": 0, "path": "", "method": ""}
        gateway.emit_soon(
            Notice(
                kind=NoticeKind.PROTOCOL_ERROR,
                severity="warning",
                remote=remote,
                transport="http",
                detail=detail,
            )
        )

    return report


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bastion.app.http import build_http_app, check_listen_address
    from bastion.app.runtime import build_runtime
    from bastion.server.protocol import with_header_deadline

    config = _load(args.config)
    host = args.host or config.listen.host
    port = args.port if args.port is not None else config.listen.port
    check_listen_address(config, host)
    runtime = build_runtime(config, config_path=args.config)
    app = build_http_app(runtime, host=host, port=port)
    logger.info("Bastion listening on http://%s:%s/mcp", host, port)
    limits = config.limits
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=args.log_level.lower(),
        access_log=False,
        # Calls in flight finish within the grace period; a connection still open after it is cut.
        timeout_graceful_shutdown=max(1, round(limits.shutdown_grace_seconds)),
        timeout_keep_alive=max(1, round(limits.keep_alive_seconds)),
        lifespan="on",
        loop="uvloop",  # the fastest event loop and HTTP parser uvicorn supports (both pinned)
        # httptools (the fastest parser uvicorn supports), with a deadline on request headers (slowloris).
        http=with_header_deadline(limits.header_timeout_seconds, _header_timeout_hook(runtime.gateway)),
    )
    return 0


def cmd_stdio(args: argparse.Namespace) -> int:
    import uvloop

    return uvloop.run(_stdio(args.config))


async def _stdio(path: str) -> int:
    """Build the runtime on the running loop, then serve one client on stdin/stdout."""
    from bastion.app.runtime import build_runtime
    from bastion.server.stdio import run_stdio

    runtime = build_runtime(_load(path), config_path=path)
    return await run_stdio(runtime.gateway, runtime.authenticator.stdio_principal)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bastion", description="MCP security gateway")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument("--log-format", choices=("text", "json"), default="text", help="text or json lines")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="start the HTTP listener (Streamable HTTP at /mcp, legacy SSE at /sse)")
    p.add_argument("--config", required=True)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("stdio", help="serve one MCP client over stdin/stdout (for desktop clients)")
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_stdio)

    p = sub.add_parser("check", help="validate a config file and print its normalized form")
    p.add_argument("--config", required=True)
    p.set_defaults(func=cmd_check)

    for module_name in _SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # In stdio mode stdout carries the protocol: every log line must go to stderr.
    _setup_logging(args.log_level, log_format=args.log_format)
    try:
        handler = getattr(args, "func", None) or getattr(args, "handler", None)
        if handler is None:
            parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
            return 2
        result: int = handler(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except BastionError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
