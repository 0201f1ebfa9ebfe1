"""The operator dashboard (`/ui`) and the admin JSON API (`/api`): live calls, overview, servers and tool pins,
approvals, policies and principals, API keys, audit search and chain verification. Admins only.

Start at `wiring.py` (assembly), `gate.py` (who may get in) and `service.py` (what can be seen and done).
"""
