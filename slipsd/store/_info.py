"""What modules learn about addresses (ip info) and what they cache across runs."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from slipsd.store import keys
from slipsd.store._connect import RedisClient


class IpInfo:
    """Per run: one hash per IP, one JSON value per field (country, asn, vt, ...)."""

    def __init__(self, client: RedisClient, run_id: str) -> None:
        self.redis = client
        self.run_id = run_id

    def update(self, updates: Mapping[str, Mapping[str, Any]]) -> None:
        """Merge fields into each IP's info: ip -> {field: value}."""
        pipe = self.redis.pipeline(transaction=False)
        for ip, fields in updates.items():
            if fields:
                pipe.hset(keys.ip_info(self.run_id, ip),
                          mapping={k: json.dumps(v) for k, v in fields.items()})
        pipe.execute()

    def get(self, ip: str) -> dict[str, Any]:
        raw = self.redis.hgetall(keys.ip_info(self.run_id, ip))
        return {k: json.loads(v) for k, v in sorted(raw.items())}


class ModuleCache:
    """A module's answers kept across runs (e.g. reputation lookups), each with an expiry.

    Redis 7.0 (Debian 12) cannot expire hash fields, so the expiry travels with
    the value and an expired entry reads as absent and is removed then.
    """

    def __init__(self, client: RedisClient, module: str) -> None:
        self.redis = client
        self.key = keys.module_cache(module)

    def get(self, field: str) -> Any | None:
        raw = self.redis.hget(self.key, field)
        if raw is None:
            return None
        try:
            entry = json.loads(raw)
            expires, value = float(entry["expires"]), entry["value"]
        except (ValueError, KeyError, TypeError):
            self.redis.hdel(self.key, field)
            return None
        if expires <= time.time():
            self.redis.hdel(self.key, field)
            return None
        return value

    def set(self, field: str, value: Any, ttl: float) -> None:
        entry = {"expires": time.time() + ttl, "value": value}
        self.redis.hset(self.key, field, json.dumps(entry))


def dump_caches(client: RedisClient) -> dict[str, dict[str, str]]:
    """Every module's cache, raw (the embedded Redis keeps nothing on disk)."""
    return {key: client.hgetall(key) for key in client.scan_iter(match=keys.module_cache("*"))}


def load_caches(client: RedisClient, caches: Mapping[str, Mapping[str, str]]) -> int:
    """Put saved caches back, never over newer entries; returns how many were restored.
    Expired entries come back too and are dropped when read."""
    pipe = client.pipeline(transaction=False)
    count = 0
    for key, fields in caches.items():
        if not key.startswith(keys.module_cache("")):
            continue
        for field, value in fields.items():
            pipe.hsetnx(key, field, value)
            count += 1
    pipe.execute()
    return count
