"""The `bastion` subcommands (`keys`, `policy`, `guard`, `tools`, `scan`, `audit`, `cluster`).

They live in the composition layer because each loads the whole config and wires the pieces it needs (state,
audit, upstreams); the features they drive stay free of the config root. Each module has `register(subparsers)`.
"""
