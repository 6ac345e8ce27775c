"""The folders and files a configuration points to: slipsd's runtime and state
folders, the output folder and the whitelist, from the configuration and the
environment (the folders systemd made for the unit)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slipsd.config import Config


def beside(main: Path, path: str) -> Path:
    """``path``, relative ones taken from the folder of the main configuration file."""
    return (main.parent / path).absolute()


def _directory(config: Config, key: str, systemd_env: str, fallback: str) -> Path:
    """The configured folder, else the one systemd made for the unit, else the FHS one."""
    if configured := config.get_str("daemon", key):
        return Path(configured)
    if env := os.environ.get(systemd_env):
        return Path(env.split(":")[0])
    return Path(fallback)


def runtime_dir(config: Config) -> Path:
    return _directory(config, "runtime_dir", "RUNTIME_DIRECTORY", "/run/slips")


def state_dir(config: Config) -> Path:
    return _directory(config, "state_dir", "STATE_DIRECTORY", "/var/lib/slips")


def output_dir(config: Config) -> Path:
    configured = config.get_str("output", "directory")
    return Path(configured) if configured else state_dir(config) / "output"


def whitelist_file(config: Config) -> str:
    """The whitelist to apply: ``[whitelist] file``, else ``whitelist.conf`` beside the
    main file when there is one, else ``""`` (none). Absolute, for the children."""
    main = Path(config.files[0]) if config.files else None
    configured = config.get_str("whitelist", "file")
    if configured:
        return str(beside(main, configured) if main else Path(configured).absolute())
    if main is not None and (main.parent / "whitelist.conf").is_file():
        return str(beside(main, "whitelist.conf"))
    return ""
