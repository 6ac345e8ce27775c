"""State of the correlation module: held flows, indexes of application records, windows."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import NamedTuple

from slipsd.modtools import CappedSet

# Zeek states of a connection whose handshake completed (data could flow both ways).
ESTABLISHED = frozenset({"SF", "S1", "S2", "S3", "RSTO", "RSTR"})


@functools.lru_cache(maxsize=1024)  # Zeek knows a few dozen services
def service_has(service: str, words: tuple[str, ...]) -> bool:
    return any(word in token for token in service.lower().split(",") for word in words)


class RecordIndex:
    """Where and when records of one application log (http or ssl) were seen.

    Timestamps go in buckets of ``width`` seconds per host pair, keeping the earliest
    and latest of each, which answers "any record between A and B in [lo, hi]?"
    exactly when hi - lo >= width (always the case here: the span is 2 x width or more).
    """

    def __init__(self, width: float, uid_cap: int = 100_000) -> None:
        self.width = width
        self.buckets: dict[int, dict[tuple[str, str], tuple[float, float]]] = {}
        self.uids: CappedSet[str] = CappedSet(uid_cap)
        self.seen = 0

    def add(self, saddr: str, daddr: str, ts: float, uid: str) -> None:
        self.seen += 1
        if uid:
            uids = self.uids
            if uid in uids:
                uids.move_to_end(uid)
            else:
                uids[uid] = None
                if len(uids) > uids.cap:
                    uids.popitem(last=False)
        bucket = int(ts // self.width)
        pairs = self.buckets.get(bucket)
        if pairs is None:  # not setdefault: that would build a dict per record
            pairs = self.buckets[bucket] = {}
        pair = (saddr, daddr)
        old = pairs.get(pair)
        # Most records fall inside or after the span already kept: no new tuple then.
        if old is None:
            pairs[pair] = (ts, ts)
        elif ts > old[1]:
            pairs[pair] = (old[0], ts)
        elif ts < old[0]:
            pairs[pair] = (ts, old[1])

    def any_between(self, saddr: str, daddr: str, lo: float, hi: float) -> bool:
        first, last = int(lo // self.width), int(hi // self.width)
        keys = (range(first, last + 1) if last - first <= len(self.buckets)
                else sorted(b for b in self.buckets if first <= b <= last))
        for bucket in keys:
            span = self.buckets.get(bucket, {}).get((saddr, daddr))
            if span is not None and span[1] >= lo and span[0] <= hi:
                return True
        return False

    def forget_before(self, ts: float) -> None:
        for bucket in [b for b in self.buckets if (b + 1) * self.width < ts]:
            del self.buckets[bucket]


class Held(NamedTuple):
    """A flow waiting until the records that could explain it have had time to arrive.

    A tuple of plain values, which the garbage collector stops tracking at its first pass.
    """

    kind: str  # "dns", "http" or "ssl"
    ts: float
    uid: str
    saddr: str
    daddr: str
    dport: int
    proto: str
    tw: int
    profile: str
    sbytes: int
    dbytes: int
    lo: float = 0.0  # matching span for application records
    hi: float = 0.0


@dataclass
class Window:
    """What was already found in one time window (all profiles)."""

    unresolved: dict[str, dict[str, None]] = field(default_factory=dict)  # profile -> dsts
    app_reported: set[tuple[str, str, int]] = field(default_factory=set)
    app_waiting: dict[tuple[str, str, int], int] = field(default_factory=dict)
    dns_waiting: set[tuple[str, str]] = field(default_factory=set)
