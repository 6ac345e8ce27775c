"""Bookkeeping for the arp module: cross-channel ordering, bounded maps, per-window state."""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_UIDS = 10


class Reorder:
    """Hands out the events of several channels in traffic-time order.

    Each channel arrives in ts order, but a batch of one channel may come before
    an earlier batch of another (say, a DHCP assignment after the ARP reply it
    explains). An event is released once every channel has reached its ts, when
    a window closes (all its events have been delivered), at shutdown, or when
    too many are waiting. Ties are broken by channel rank and per-channel
    arrival index, never by how the batches interleaved, so a replay of the run
    releases the same sequence.
    """

    def __init__(self, channels: Sequence[str], limit: int) -> None:
        self._rank = {name: i for i, name in enumerate(channels)}
        self._marks = {name: float("-inf") for name in channels}
        self._seq = dict.fromkeys(channels, 0)
        self._heap: list[tuple[float, int, int, str, dict[str, Any]]] = []
        self._limit = limit

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, channel: str, event: dict[str, Any]) -> None:
        ts = float(event["ts"])
        self._seq[channel] += 1
        heapq.heappush(self._heap, (ts, self._rank[channel], self._seq[channel], channel, event))
        if ts > self._marks[channel]:
            self._marks[channel] = ts

    def ready(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Events no channel can still precede, plus the oldest ones beyond the limit."""
        safe = min(self._marks.values())
        heap = self._heap
        while heap and (heap[0][0] < safe or len(heap) > self._limit):
            _, _, _, channel, event = heapq.heappop(heap)
            yield channel, event

    def before(self, end: float | None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Events older than ``end`` (everything when None)."""
        heap = self._heap
        while heap and (end is None or heap[0][0] < end):
            _, _, _, channel, event = heapq.heappop(heap)
            yield channel, event


class Bounded(OrderedDict[str, Any]):
    """A map that forgets its least recently written entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.limit:
            self.popitem(last=False)


@dataclass
class Owner:
    """The MAC an IP is bound to, and when that binding was last confirmed."""

    mac: str
    seen: float


@dataclass
class Scan:
    """ARP requests of one source in one window."""

    recent: OrderedDict[str, float] = field(default_factory=OrderedDict)  # target -> last ts
    targets: set[str] | None = None  # every target, once the source is known to scan
    next_level: int = 0
    uids: list[str] = field(default_factory=list)


@dataclass
class Window:
    """What the module remembers about one time window; dropped when it closes."""

    reported: set[tuple[str, ...]] = field(default_factory=set)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (type, who) -> reports
    scans: dict[str, Scan] = field(default_factory=dict)


def add_uid(uids: list[str], uid: str) -> None:
    if uid and len(uids) < MAX_UIDS and uid not in uids:
        uids.append(uid)
