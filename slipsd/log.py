"""Logging set-up shared by the daemon and its children (all to stderr: the journal)."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "info", who: str = "slipsd") -> None:
    handler = logging.StreamHandler(sys.stderr)
    fmt = f"%(asctime)s {who} %(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
