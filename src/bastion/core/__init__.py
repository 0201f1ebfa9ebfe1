"""The core: the gateway's own parts (sessions, the notice bus, upstream events, lifecycle) and the ports.

Outer layers (server, web, audit, telemetry, cluster, auth) use the core through the small Protocols in
`core/ports.py` and give it `Contribution` values (`core/contribution.py`); only the composition root
(`bastion.app`) builds a `Gateway` with every feature.
"""
