"""The composition root: the only package that imports every feature (`runtime.py`), the HTTP app's assembly
(`http.py`), the `bastion` command (`cli.py`) and the subcommands that wire features, upstreams and config together
(`commands/`).

Nothing below this package imports it (the layer contracts in pyproject.toml say so).
"""
