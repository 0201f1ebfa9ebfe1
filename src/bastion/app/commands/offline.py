"""Commands that run without a gateway: who runs them, and writing their audit event into the configured trail.

Why: `bastion keys` and `bastion tools` change credentials and pins while no gateway may be running; their event
goes into the same trail, on the same chain and with the same key and witnesses as the gateway's, and fails closed
when it cannot (see `bastion.audit.admin` for the notices themselves).
"""

from __future__ import annotations

import getpass

from bastion.audit.event import event_from_notice
from bastion.audit.keys import audit_key
from bastion.audit.recorder import AuditRecorder
from bastion.audit.witness import build_witnesses
from bastion.config import load_config
from bastion.core.config import default_replica
from bastion.state import open_state_store
from bastion.types import Notice


def cli_user() -> str:
    """Who runs `bastion keys` / `bastion tools` (the OS account), for the `by` of their events."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in containers without a passwd entry
        return "cli"


async def record_offline(config_path: str, notice: Notice) -> None:
    """Write one notice into the trail of the gateway configured in `config_path` (strict: durable or raise).

    The state store (the witness) is opened from the same config, with its paths anchored as the gateway's.

    Raises:
        ConfigError: The config cannot be loaded.
        AuditUnavailable: The event could not be made durable.
    """
    config = load_config(config_path)
    if not config.audit.enabled:
        return
    async with open_state_store(config.state) as store:
        recorder = AuditRecorder.from_config(
            config.audit,
            replica=config.cluster.replica_id or default_replica(),
            key=audit_key(config.audit, config.state, create=True),
            witnesses=build_witnesses(config.audit.witnesses, store),
        )
        await recorder.open()
        try:
            await recorder.record(event_from_notice(notice), wait=True)
        finally:
            await recorder.aclose()  # a final checkpoint covers the event, and its head goes to the witnesses
