"""The composition layer: the CLI and the commands that wire features, upstreams and config together.

Nothing below this package imports it (the layer contracts in pyproject.toml say so).
"""
