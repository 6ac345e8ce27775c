"""State of the beaconing module: held flows, per-destination rings, names of addresses."""

from __future__ import annotations

from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from slipsd.netinfo import parse_ip

K = TypeVar("K")
V = TypeVar("V")

UIDS_KEPT = 10
PROMOTE_BEATS = 3  # beats after which a destination is worth protecting from churn

# profile, destination label (domain or IP), port, transport
TrackKey = tuple[str, str, int, str]


@dataclass(slots=True)
class Held:
    """A flow waiting until the records that could name its destination have arrived."""

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
    """

    def __init__(self, cap: int) -> None:
        self.cap = max(1, cap)
        self.young: OrderedDict[TrackKey, Track] = OrderedDict()
        self.old: OrderedDict[TrackKey, Track] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.young) + len(self.old)

    def get(self, key: TrackKey) -> Track:
        track = self.old.get(key)
        if track is not None:
            self.old.move_to_end(key)
            return track
        track = self.young.get(key)
        if track is None:
            track = self.young[key] = Track()
            if len(self.young) > self.cap:
                self.young.popitem(last=False)
                self.evicted += 1
        else:
            self.young.move_to_end(key)
        return track

    def settle(self, key: TrackKey, track: Track) -> None:
        """Promote a track that has enough beats to the protected segment."""
        if len(track.times) < PROMOTE_BEATS or self.young.pop(key, None) is None:
            return
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
        if key in self.items:
            self.items.move_to_end(key)
        self.items[key] = value
        if len(self.items) > self.cap:
            self.items.popitem(last=False)

    def setdefault(self, key: K, value: V) -> None:
        if key not in self.items:
            self.set(key, value)


def domain(value: object) -> str:
    """A host name from an SNI, HTTP Host or DNS query; "" for addresses and junk."""
    if not isinstance(value, str):
        return ""
    name = value.strip().lower().rstrip(".")
    if name.startswith("["):  # [v6]:port
        return ""
    host, _, port = name.rpartition(":")
    if host and port.isdigit():
        name = host
    if not name or "." not in name or parse_ip(name) is not None:
        return ""
    return name
