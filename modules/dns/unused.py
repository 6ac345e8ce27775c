"""Which resolved names a host never connects to: DNS answers against conn records.

Both logs are in traffic-time order only roughly: the conn log is written as
connections end (a long one appears long after its start), and the two logs
interleave only per batch. So a resolved name waits until both logs are past
its deadline (query time + wait), judged against every connection seen from the
host, before or after it in the stream.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from slipsd.modtools import CappedSet

# Seconds Zeek may take to log a connection after it ended (its default TCP
# inactivity timeout): the conn log is known complete up to its clock minus this.
LOG_DELAY = 300.0
ANSWERS_CAP = 16  # addresses kept per waiting name
CONTACTS_PER_HOST = 20_000
PENDING_TOTAL = 200_000


@dataclass(slots=True)
class Query:
    """A resolved name waiting for a connection to one of its addresses."""

    profile: str
    saddr: str
    name: str
    ts: float
    tw: int
    uid: str
    answers: list[str]
    seq: int


class Pending:
    """Queries held until their deadline has passed, bounded per profile and in
    total; a deadline heap with lazy removal finds the due ones in order."""

    def __init__(self, per_profile: int, total: int) -> None:
        self.per_profile = per_profile
        self.total = total
        self.items: dict[tuple[str, str], Query] = {}
        self.by_answer: dict[tuple[str, str], set[str]] = {}
        self.counts: dict[str, int] = {}
        self._heap: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self.refused = 0  # queries not held because a cap was reached

    def __len__(self) -> int:
        return len(self.items)

    def get(self, profile: str, name: str) -> Query | None:
        return self.items.get((profile, name))

    def add(self, query: Query, deadline: float) -> bool:
        if (len(self.items) >= self.total
                or self.counts.get(query.profile, 0) >= self.per_profile):
            self.refused += 1
            return False
        self._seq += 1
        query.seq = self._seq
        self.items[(query.profile, query.name)] = query
        self.counts[query.profile] = self.counts.get(query.profile, 0) + 1
        heapq.heappush(self._heap, (deadline, self._seq, query.profile, query.name))
        if len(self._heap) > 4 * self.total:
            # Entries of queries already explained linger until their deadline; rebuild.
            self._heap = [e for e in self._heap if self._current(e)]
            heapq.heapify(self._heap)
        return True

    def index(self, query: Query, ip: str) -> None:
        self.by_answer.setdefault((query.profile, ip), set()).add(query.name)

    def waiting_for(self, profile: str, ip: str) -> list[Query]:
        names = self.by_answer.get((profile, ip))
        return [self.items[(profile, n)] for n in sorted(names)] if names else []

    def remove(self, query: Query) -> None:
        del self.items[(query.profile, query.name)]
        left = self.counts[query.profile] - 1
        if left:
            self.counts[query.profile] = left
        else:
            del self.counts[query.profile]
        for ip in query.answers:
            names = self.by_answer.get((query.profile, ip))
            if names is not None:
                names.discard(query.name)
                if not names:
                    del self.by_answer[(query.profile, ip)]

    def due(self, now: float) -> list[Query]:
        """Remove and return the queries whose deadline is before ``now``, oldest first."""
        out = []
        heap = self._heap
        while heap and heap[0][0] < now:
            entry = heapq.heappop(heap)
            if self._current(entry):
                query = self.items[(entry[2], entry[3])]
                self.remove(query)
                out.append(query)
        return out

    def oldest_ts(self) -> float | None:
        return next(iter(self.items.values())).ts if self.items else None

    def _current(self, entry: tuple[float, int, str, str]) -> bool:
        query = self.items.get((entry[2], entry[3]))
        return query is not None and query.seq == entry[1]


class Contacts:
    """Per profile, the public addresses it opened connections to, with the earliest
    start and the latest end seen; least recently updated addresses go first past
    ``per_profile``."""

    def __init__(self, per_profile: int) -> None:
        self.per_profile = per_profile
        self.spans: dict[str, dict[str, tuple[float, float]]] = {}

    def add(self, profile: str, ip: str, start: float, end: float) -> None:
        spans = self.spans.get(profile)
        if spans is None:  # not setdefault: that would build a dict per flow
            spans = self.spans[profile] = {}
        old = spans.pop(ip, None)
        if old is None:
            spans[ip] = (start, end)
        else:  # min() and max() without their calls, ties and NaNs alike
            first, last = old
            spans[ip] = (start if start < first else first, end if end > last else last)
        if len(spans) > self.per_profile:
            del spans[next(iter(spans))]

    def overlaps(self, profile: str, ip: str, lo: float, hi: float) -> bool:
        spans = self.spans.get(profile)
        span = spans.get(ip) if spans is not None else None
        return span is not None and span[0] <= hi and span[1] >= lo

    def forget_ending_before(self, ts: float) -> None:
        for profile in list(self.spans):
            spans = self.spans[profile]
            for ip in [ip for ip, (_, end) in spans.items() if end < ts]:
                del spans[ip]
            if not spans:
                del self.spans[profile]


class AnswerTracker:
    """Resolved names waiting for a connection; ``flow``, ``query``, ``settle`` and
    ``finish`` return the names whose wait ended without one."""

    def __init__(self, wait: float, per_host: int) -> None:
        self.wait = wait
        self.pending = Pending(per_host, PENDING_TOTAL)
        self.contacts = Contacts(CONTACTS_PER_HOST)
        self.used = CappedSet(200_000)  # (profile, name) whose addresses it connected to
        self.conn_clock = -math.inf  # latest connection end seen
        self.dns_clock = -math.inf
        self.settled = -math.inf  # every record before this time has been delivered

    def flow(self, profile: str, ip: str, start: float, end: float) -> list[Query]:
        self.contacts.add(profile, ip, start, end)
        if (profile, ip) in self.pending.by_answer:  # rarely: most names are used at once
            for query in self.pending.waiting_for(profile, ip):
                if start <= query.ts + self.wait and end >= query.ts - self.wait:
                    self.pending.remove(query)
                    self.used.add((profile, query.name))
        # Only now: a long connection moves the clock past its own query.
        return self.conn_time(end)

    def conn_time(self, end: float) -> list[Query]:
        if end <= self.conn_clock:
            return []
        self.conn_clock = end
        return self._due()

    def query(self, query: Query, ips: list[str]) -> None:
        """A name resolved to public ``ips``; merged into the one waiting, if any."""
        if ips and (query.profile, query.name) not in self.used:
            self._hold(query, ips)

    def dns_time(self, ts: float) -> list[Query]:
        if ts <= self.dns_clock:
            return []
        self.dns_clock = ts
        return self._due()

    def settle(self, end: float) -> list[Query]:
        """A window closed at ``end``: everything before it has been delivered."""
        if end <= self.settled:
            return []
        self.settled = end
        due = self._due()
        # Connections matter to queries still to come (none older than the dns
        # clock or this end) and to those waiting; a minute of slack covers
        # slightly unordered lines.
        horizon = max(self.dns_clock, end)
        oldest = self.pending.oldest_ts()
        if oldest is not None:
            horizon = min(horizon, oldest)
        self.contacts.forget_ending_before(horizon - self.wait - 60.0)
        return due

    def finish(self) -> list[Query]:
        """End of the run: both logs are complete, up to the conn log's last end."""
        return self.pending.due(self.conn_clock)

    def judged_until(self) -> float:
        return self.conn_clock - LOG_DELAY

    def _hold(self, query: Query, ips: list[str]) -> None:
        waiting = self.pending.get(query.profile, query.name)
        if waiting is not None:
            query = waiting
        lo, hi = query.ts - self.wait, query.ts + self.wait
        if any(self.contacts.overlaps(query.profile, ip, lo, hi) for ip in ips):
            if waiting is not None:
                self.pending.remove(query)
            self.used.add((query.profile, query.name))
            return
        if waiting is None and not self.pending.add(query, hi):
            return
        for ip in ips:
            if ip not in query.answers and len(query.answers) < ANSWERS_CAP:
                query.answers.append(ip)
                self.pending.index(query, ip)

    def _due(self) -> list[Query]:
        # Both logs must be past the deadline: every connection that could use the
        # answers has been logged, and every later answer for the same name (an
        # AAAA after an A, a repeat) has been merged in.
        now = min(self.conn_clock - LOG_DELAY, max(self.dns_clock, self.settled))
        return self.pending.due(now)
