"""``slipsd``: run the daemon in the foreground (systemd supervises it), or check a config."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from slipsd import __version__
from slipsd.config import ConfigError, default_config_path, load
from slipsd.log import setup_logging


def _overrides(pairs: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot or not section or not name:
            raise ConfigError([f"--set {pair!r}: expected SECTION.KEY=VALUE"])
        out.setdefault(section, {})[name] = value
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="slipsd", description="slips daemon: behavioural network intrusion detection")
    parser.add_argument("-c", "--config", type=Path, default=None,
                        help="main configuration file (default: %(default)s → "
                             "$SLIPS_CONFIG, /etc/slips/slips.conf)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override one configuration key (repeatable)")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the configuration and the enabled modules, then exit")
    parser.add_argument("--version", action="version", version=f"slipsd {__version__}")
    args = parser.parse_args(argv)
    config_path = args.config or default_config_path()
    setup_logging("info")
    log = logging.getLogger("slipsd")
    try:
        overrides = _overrides(args.set)
        config = load(config_path, overrides)
        if args.check_config:
            from slipsd.module_loader import validate_modules

            modules = validate_modules(config)
            print(f"{config_path}: OK ({len(config.files)} file(s); modules: "
                  f"{', '.join(modules) or 'none'})")
            return 0
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("invalid configuration: %s", problem)
        return 78 if not args.check_config else 1
    setup_logging(config.get_str("daemon", "log_level"))

    from slipsd.daemon import run_daemon

    return run_daemon(config, config_path, overrides)


if __name__ == "__main__":
    sys.exit(main())
