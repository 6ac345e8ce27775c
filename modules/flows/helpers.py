"""What a conn.log record says about its connection, and the per-window state of a profile."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slipsd.netinfo import is_group, is_private, parse_ip

# Zeek conn_state values where both sides exchanged packets after a handshake.
ESTABLISHED_STATES = frozenset({"SF", "S1", "S2", "S3", "RSTO", "RSTR"})
# States whose history letters are not enough to say anything (no handshake seen).
UNCLEAR_STATES = frozenset({"OTH", ""})
# Per-window collections stop growing here: a flood of distinct destinations must
# not grow memory; what comes after the cap is ignored (deterministically).
MAX_KEYS = 10_000
MAX_UIDS = 10


def is_broadcast_like(addr: str) -> bool:
    """Multicast, the limited broadcast, or x.x.x.255: a directed broadcast on the usual
    /24 (or larger) LANs. Such traffic is discovery chatter, not a connection."""
    return is_group(addr) or ("." in addr and addr.endswith(".255"))


def ports_by_proto(known: Mapping[tuple[int, str], str]) -> dict[str, frozenset[int]]:
    """The ports of a load_ports table, per protocol."""
    found: dict[str, set[int]] = {}
    for port, proto in known:
        found.setdefault(proto, set()).add(port)
    return {proto: frozenset(ports) for proto, ports in found.items()}


@functools.lru_cache(maxsize=16384)
def is_odd_private_target(addr: str) -> bool:
    """Private space worth judging: not link-local, multicast or a broadcast."""
    ip = parse_ip(addr)
    if ip is None or not is_private(addr) or ip.is_link_local:
        return False
    return not is_broadcast_like(addr)


@dataclass(slots=True)
class Tally:
    """A count with the first few distinct uids behind it."""

    count: int = 0
    total: int = 0  # bytes, for uploads
    uids: list[str] = field(default_factory=list)

    def add(self, uid: str, nbytes: int = 0) -> None:
        self.count += 1
        self.total += nbytes
        if uid and len(self.uids) < MAX_UIDS and uid not in self.uids:
            self.uids.append(uid)


@dataclass(slots=True)
class Window:
    """Everything the module remembers about one profile in one time window."""

    # not-established (daddr, dport) pairs, kept up to the scanner threshold only
    unanswered: set[tuple[str, int]] = field(default_factory=set)
    rejected: dict[tuple[str, int, str], Tally] = field(default_factory=dict)
    uploads: dict[str, Tally] = field(default_factory=dict)
    # daddr -> unnamed TCP ports it answered on
    unnamed_ports: dict[str, set[int]] = field(default_factory=dict)
    ftp_servers: set[str] = field(default_factory=set)
    # unanswered attempts to unknown ports, reported when the window closes unless
    # the source turned out to be a scanner by then
    pending: dict[tuple[str, int, str], dict[str, Any]] = field(default_factory=dict)
    # (type, victim, key) already reported, and how many per type (the storm guard)
    reported: set[tuple[str, str, str]] = field(default_factory=set)
    per_type: dict[str, int] = field(default_factory=dict)


def put(table: dict[Any, Any], key: Any, factory: type) -> Any:
    """table[key], created when absent and the table is below MAX_KEYS; else None."""
    value = table.get(key)
    if value is None and len(table) < MAX_KEYS:
        value = table[key] = factory()
    return value
