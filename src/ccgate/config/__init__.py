"""Configuration: the YAML schema, where the file is found, and secret references."""

from ccgate.config.load import find_config_file, load_config
from ccgate.config.model import Config, Provider

__all__ = ["Config", "Provider", "find_config_file", "load_config"]
