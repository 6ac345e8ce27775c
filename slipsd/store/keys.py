"""Every Redis key slips uses, in one place.

Keys of one run share the hash tag ``{run}``, so on a Redis Cluster a whole
run lives on one shard and multi-key commands stay legal.
"""

from __future__ import annotations

RUNS = "slips:runs"  # hash: run id -> JSON summary, across all runs


def run(run_id: str, *parts: str | int) -> str:
    tail = ":".join(str(p) for p in parts)
    return f"slips:{{{run_id}}}:{tail}"


def stream(run_id: str, channel: str) -> str:
    return run(run_id, "stream", channel)


def module(run_id: str, name: str) -> str:
    return run(run_id, "module", name)


def profile(run_id: str, ip: str) -> str:
    return run(run_id, "profile", ip)


def window(run_id: str, ip: str, tw: int, part: str = "") -> str:
    return run(run_id, "tw", ip, tw, part) if part else run(run_id, "tw", ip, tw)


def window_parts(run_id: str, ip: str, tw: int) -> tuple[str, str, str]:
    """A window's three hashes: its totals, its destination IPs and its ports."""
    return window(run_id, ip, tw), window(run_id, ip, tw, "dst"), window(run_id, ip, tw, "ports")


def ip_info(run_id: str, ip: str) -> str:
    return run(run_id, "ipinfo", ip)


def retention_seen(run_id: str) -> str:
    """Sorted set of a live run: address -> newest window it was seen in (retention)."""
    return run(run_id, "retention", "seen")


def module_cache(name: str) -> str:
    """Hash of one module's cache; shared by all runs, so it outlives them."""
    return f"slips:cache:{name}"
