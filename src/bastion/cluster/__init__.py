"""Running several replicas as one gateway: the session registry, heartbeats, and changes heard from others.

See docs/deploy.md for the deployment side (load balancer affinity, Redis, PostgreSQL).
"""

from __future__ import annotations

from bastion.cluster.member import ClusterMember, build_cluster
from bastion.cluster.registry import SessionEntry, SessionRegistry, session_key

__all__ = ["ClusterMember", "SessionEntry", "SessionRegistry", "build_cluster", "session_key"]
