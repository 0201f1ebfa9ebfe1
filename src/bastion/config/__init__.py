"""Configuration: the `bastion.yaml` schema and its loader."""

from bastion.config.loader import load_config, parse_config
from bastion.config.model import BastionConfig, ServerConfig

__all__ = ["BastionConfig", "ServerConfig", "load_config", "parse_config"]
