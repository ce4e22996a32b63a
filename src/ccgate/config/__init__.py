"""Configuration: the YAML schema, named providers (presets), where the file is found, and
secret references. Config imports only ``errors``, ``proxy_env`` and translate's quirk
types; upstream, routing and server read config, never the reverse (tests/unit/test_layering.py)."""

from ccgate.config.load import find_config_file, load_config
from ccgate.config.model import Config, Provider

__all__ = ["Config", "Provider", "find_config_file", "load_config"]
