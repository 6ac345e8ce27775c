"""Modules' caches (paid-for lookups such as VirusTotal answers) kept across restarts.

The embedded Redis keeps nothing on disk, so slipsd saves the caches to a file
in its state folder when it stops and loads them back when it starts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import redis

from slipsd.store import RedisClient, dump_caches, load_caches

log = logging.getLogger(__name__)

FILE_NAME = "module-caches.json"


def restore_caches(client: RedisClient, state_dir: Path) -> None:
    path = state_dir / FILE_NAME
    try:
        restored = load_caches(client, json.loads(path.read_text()))
        log.info("restored %d cached module answers from %s", restored, path)
    except FileNotFoundError:
        pass
    except (OSError, ValueError, AttributeError, redis.RedisError) as exc:
        log.warning("module caches not restored from %s: %s", path, exc)


def save_caches(client: RedisClient, state_dir: Path) -> None:
    path = state_dir / FILE_NAME
    try:
        caches = dump_caches(client)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(caches))
        tmp.replace(path)  # a crash while writing leaves the last good file
    except (OSError, redis.RedisError) as exc:
        log.warning("module caches not saved to %s: %s", path, exc)
