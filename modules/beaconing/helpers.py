"""State of the beaconing module: held flows, per-destination rings, names of addresses."""

from __future__ import annotations

import functools
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from slipsd.netinfo import parse_ip

K = TypeVar("K")
V = TypeVar("V")

UIDS_KEPT = 10
PROMOTE_BEATS = 3  # beats after which a destination is worth protecting from churn

# profile, destination label (domain or IP), port, transport
TrackKey = tuple[str, str, int, str]


class Held(NamedTuple):
    """A flow waiting until the records that could name its destination have arrived.

    A tuple of plain values: the garbage collector stops tracking it at its first pass,
    so the flows waiting (many thousands) cost the collections nothing.
    """

    ts: float
    uid: str
    saddr: str
    daddr: str
    dport: int
    proto: str
    sbytes: int
    tw: int
    profile: str


@dataclass(slots=True)
class Track:
    """A bounded ring of the most recent beats to one destination.

    A beat is a connection together with the ones that follow it within the
    burst interval (a page load, a beacon that opens two connections): parallel
    connections would otherwise add gaps of almost nothing.
    """

    times: array[float] = field(default_factory=lambda: array("d"))
    sizes: array[int] = field(default_factory=lambda: array("q"))
    uids: list[str] = field(default_factory=list)
    daddr: str = ""
    flows: int = 0
    reported_tw: int = -1
    protected: bool = False  # in Tracks.old

    @classmethod
    def first(cls, held: Held) -> Track:
        """The track of a destination after its first flow, as ``Track().add(held)``."""
        return cls(array("d", (held.ts,)), array("q", (max(0, held.sbytes),)), [held.uid],
                   held.daddr, 1)

    def add(self, held: Held, burst: float, ring: int) -> bool:
        """Count a flow; True when it starts a new beat (the rhythm changed)."""
        self.flows += 1
        self.daddr = held.daddr
        self.uids.append(held.uid)
        if len(self.uids) > UIDS_KEPT:
            del self.uids[0]
        if self.times and held.ts < self.times[-1] + burst:
            # Late records (ts before the last beat) join it too: they carry no gap.
            self.sizes[-1] += max(0, held.sbytes)
            return False
        self.times.append(held.ts)
        self.sizes.append(max(0, held.sbytes))
        if len(self.times) > ring:
            del self.times[0]
            del self.sizes[0]
        return True


class Tracks:
    """Tracks of all destinations, bounded by a segmented LRU.

    New destinations wait in a probation segment until they have a few beats;
    only then do they enter the protected segment. One-off destinations (a scan,
    a crawler) churn through probation without pushing out the tracks of
    long-running beacons. Each segment holds at most ``cap`` tracks.

    Most destinations are seen once: probation keeps their only flow (a plain
    tuple) and builds the Track at the second.
    """

    def __init__(self, cap: int) -> None:
        self.cap = max(1, cap)
        self.young: OrderedDict[TrackKey, Track | Held] = OrderedDict()
        self.old: OrderedDict[TrackKey, Track] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.young) + len(self.old)

    def place(self, key: TrackKey, held: Held, burst: float, ring: int) -> Track | None:
        """Count a flow to ``key``: its track when the flow started a new beat, None when
        it did not or was the destination's first (one beat, which nothing judges)."""
        track = self.old.get(key)
        if track is not None:
            self.old.move_to_end(key)
        else:
            young = self.young
            found = young.get(key)
            if found is None:
                young[key] = held  # a track of one beat, which nothing judges
                if len(young) > self.cap:
                    young.popitem(last=False)
                    self.evicted += 1
                return None
            young.move_to_end(key)
            if isinstance(found, Track):
                track = found
            else:
                track = young[key] = Track.first(found)
        if not track.add(held, burst, ring):
            return None
        self.settle(key, track)
        return track

    def settle(self, key: TrackKey, track: Track) -> None:
        """Promote a track that has enough beats to the protected segment."""
        if track.protected or len(track.times) < PROMOTE_BEATS \
                or self.young.pop(key, None) is None:
            return
        track.protected = True
        self.old[key] = track
        if len(self.old) > self.cap:
            self.old.popitem(last=False)
            self.evicted += 1


class Capped(Generic[K, V]):
    """A mapping that forgets its oldest entries past ``cap``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        return self.items.get(key)

    def pop(self, key: K) -> V | None:
        return self.items.pop(key, None)

    def set(self, key: K, value: V) -> None:
        items = self.items
        # Assigning keeps an existing key in place; one move makes it the newest
        # without a separate membership test (this runs for every DNS answer).
        items[key] = value
        items.move_to_end(key)
        if len(items) > self.cap:
            items.popitem(last=False)

    def setdefault(self, key: K, value: V) -> None:
        items = self.items
        if key not in items:
            items[key] = value
            if len(items) > self.cap:
                items.popitem(last=False)


def domain(value: object) -> str:
    """A host name from an SNI, HTTP Host or DNS query; "" for addresses and junk."""
    return _domain(value) if isinstance(value, str) else ""


# Clients ask for the same few thousand names over and over.
@functools.lru_cache(maxsize=16384)
def _domain(value: str) -> str:
    name = value.strip().lower().rstrip(".")
    if name.startswith("["):  # [v6]:port
        return ""
    host, _, port = name.rpartition(":")
    if host and port.isdigit():
        name = host
    if not name or "." not in name or parse_ip(name) is not None:
        return ""
    return name
