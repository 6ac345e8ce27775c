"""State of the correlation module: held flows, indexes of application records, windows."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

# Zeek states of a connection whose handshake completed (data could flow both ways).
ESTABLISHED = frozenset({"SF", "S1", "S2", "S3", "RSTO", "RSTR"})


def service_has(service: str, words: tuple[str, ...]) -> bool:
    return any(word in token for token in service.lower().split(",") for word in words)


def powers(first: int, before: int, now: int) -> Iterator[int]:
    """The thresholds first, 10*first, 100*first, ... that a count passed going before -> now."""
    level = first
    while level <= now:
        if level > before:
            yield level
        level *= 10


class CappedSet:
    """Insertion-ordered set that forgets its oldest members past ``cap``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._items: OrderedDict[str, None] = OrderedDict()

    def add(self, item: str) -> None:
        if item in self._items:
            self._items.move_to_end(item)
            return
        self._items[item] = None
        if len(self._items) > self.cap:
            self._items.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)


class RecordIndex:
    """Where and when records of one application log (http or ssl) were seen.

    Timestamps go in buckets of ``width`` seconds per host pair, keeping the earliest
    and latest of each, which answers "any record between A and B in [lo, hi]?"
    exactly when hi - lo >= width (always the case here: the span is 2 x width or more).
    """

    def __init__(self, width: float, uid_cap: int = 100_000) -> None:
        self.width = width
        self.buckets: dict[int, dict[tuple[str, str], tuple[float, float]]] = {}
        self.uids = CappedSet(uid_cap)
        self.seen = 0

    def add(self, saddr: str, daddr: str, ts: float, uid: str) -> None:
        self.seen += 1
        if uid:
            self.uids.add(uid)
        pairs = self.buckets.setdefault(int(ts // self.width), {})
        old = pairs.get((saddr, daddr))
        pairs[(saddr, daddr)] = (ts, ts) if old is None else (min(old[0], ts), max(old[1], ts))

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


@dataclass(slots=True)
class Held:
    """A flow waiting until the records that could explain it have had time to arrive."""

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


class Waiting:
    """Held flows ordered by the traffic time after which they can be judged."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._heap: list[tuple[float, int, Held]] = []
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, deadline: float, item: Held, judge: Callable[[Held], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, item))
        # Bounded memory: past the cap the longest-waiting flow is judged early.
        while len(self._heap) > self.cap:
            judge(heapq.heappop(self._heap)[2])

    def release(self, now: float, judge: Callable[[Held], None]) -> None:
        while self._heap and self._heap[0][0] <= now:
            judge(heapq.heappop(self._heap)[2])


@dataclass
class Window:
    """What was already found in one time window (all profiles)."""

    unresolved: dict[str, dict[str, None]] = field(default_factory=dict)  # profile -> dsts
    app_reported: set[tuple[str, str, int]] = field(default_factory=set)
    app_waiting: dict[tuple[str, str, int], int] = field(default_factory=dict)
    dns_waiting: set[tuple[str, str]] = field(default_factory=set)


class Windows:
    """Per-window state, dropped once traffic time is well past the window's end."""

    def __init__(self) -> None:
        self.state: dict[int, Window] = {}
        self.origin: float | None = None  # start of window 0
        self.width = 3600.0

    def get(self, tw: int) -> Window:
        win = self.state.get(tw)
        if win is None:
            win = self.state[tw] = Window()
        return win

    def learn(self, event: Any) -> None:
        self.width = float(event["end"]) - float(event["start"])
        self.origin = float(event["start"]) - int(event["tw"]) * self.width

    def forget_before(self, ts: float) -> None:
        if self.origin is None:
            return
        origin, width = self.origin, self.width
        for tw in [t for t in self.state if origin + (t + 1) * width < ts]:
            del self.state[tw]
