"""What a session remembers of a `Principal` (the record itself is in `bastion.types`): credential digests and bindings."""

from __future__ import annotations

import hashlib

# Re-exported: the record lives at the bottom layer so every layer can name the caller.
from bastion.types import ANONYMOUS as ANONYMOUS
from bastion.types import Principal as Principal


def token_digest(token: str) -> str:
    """A short sha256 of a presented token: tells tokens apart in the audit trail, reveals nothing of them."""
    return hashlib.sha256(b"bastion-token\n" + token.encode()).hexdigest()[:32]
