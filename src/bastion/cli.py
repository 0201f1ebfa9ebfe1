"""`python -m bastion.cli`: the `bastion` command (`bastion.app.cli`), for environments without the entry point."""

import sys

from bastion.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
