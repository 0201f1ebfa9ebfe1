"""The composition root: the only package that imports every feature (`runtime.py`), the HTTP app's assembly
(`http.py`) and the `bastion` command (`cli.py`)."""
