"""Bastion: an MCP security gateway. One endpoint in front of many MCP servers, with auth, policy, guardrails
and an audit trail on every message."""

__version__ = "0.1.0"
