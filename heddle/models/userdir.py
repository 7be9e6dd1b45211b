"""Where the user's own heddle files live: the settings file and what sits beside it.

`config_path` is the one rule (heddle.config reads the settings from it); files learned from
use, such as the calibrated performance parameters, are written beside it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["CONFIG_ENV", "config_path"]

CONFIG_ENV = "HEDDLE_CONFIG"
"""Environment variable naming the config file (overrides ~/.heddle/config.yaml)."""


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The settings file: ``$HEDDLE_CONFIG`` when set, else ``~/.heddle/config.yaml``."""
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser()
    home = env.get("HOME")
    return (Path(home) if home else Path.home()) / ".heddle" / "config.yaml"
