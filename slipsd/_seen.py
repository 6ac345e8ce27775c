"""What the profiler remembers of addresses and profiles, and when a live run forgets it.

The profiler announces an address once (NEW_IP, and written to the run's ``ips`` set)
and keeps each profile's first_seen, last_seen and flows, which it writes whole to the
profile's hash. An analysis keeps all of it. A live run never ends, and Redis keeps only
its last ``[database] keep_windows`` windows (``slipsd/store/_retention.py``): what the
sweep deletes, the ingest must forget too, or a returning address is never announced
nor written again, and a returning profile is written back with its old counters.

With ``keep_windows`` set, when traffic time reaches window C, the cutoff is C - keep:
the sweep's own once it sees window C in Redis, which is only after this.

- A profile goes when its last_seen is before the cutoff window. Its windows are all
  older, so the sweep deletes it, unless it comes back first: then its fresh hash
  overwrites the old one, and the sweep deletes only its old windows. A profile kept
  here has a stored last_seen (flushed before this) that the sweep does not delete.
- An address goes when its last *counted* sighting is before the cutoff window. Counted
  are the sightings the sweep's index counts: the source of a record (a profile), the
  destination of a flow, with analysis_direction = all any destination; all in the open
  window. So the ingest forgets an address no later than the sweep drops it, perhaps
  earlier, which only announces it once more (an address has no counters).
- Other sightings only *pass*: an address announced by one is forgotten when the window
  ends. These are destinations of other records (ARP targets, DHCP servers), which the
  sweep cannot see in the windows it reads (only in the dates below); and late records,
  whose window the sweep may never read again.
  So does the return of an address forgotten at this advance, until the next one: the
  sweep that drops it runs about then, and may not have read its return yet.

Every announcement is also dated in the sweep's index (``new``: the address and the
window it was announced in, written by the store with ZADD GT in the same script as
``ips``), and the sweep drops an address only if its date is still old at that moment.
So an address announced again (one that passes, or one forgotten here earlier than the
sweep drops it) is never dropped by a sweep that read the index before its return.

Per record, the profiler tests membership in ``seen`` (the addresses that need nothing
more in the open window). ``sight`` runs once per address and window (again for each
record that passes with a remembered address, until one counts), ``forget`` once per
window advance: O(addresses + profiles), once per traffic hour by default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from slipsd.events import NEW_IP

Emit = Callable[[str, dict[str, Any]], None]


class Addresses:
    """The addresses announced so far; with ``keep_windows`` > 0, only the recent ones."""

    def __init__(self, emit: Emit, keep_windows: int = 0, both: bool = False) -> None:
        self.keep = keep_windows
        self._emit = emit
        self._both = both  # analysis_direction = all: every destination is a profile
        # The hot path's set: addresses that need no more work in the open window (all
        # of them, when nothing is forgotten). "" stands for a missing address.
        self.seen: set[str] = {""}
        # Announced since the last store write, with the newest window each was announced
        # in: for ``ips``, and with keep_windows also for the retention index, which must
        # not drop them before that window expires.
        self.new: dict[str, int] = {}
        self._marks: dict[str, int] = {}  # remembered -> window of its last counted sighting
        self._passing: set[str] = set()  # announced in the open window, not counted
        self._stale: set[str] = set()  # forgotten at the last advance by their marks

    def load(self, marks: Mapping[str, int]) -> None:
        """A restarted ingest: these addresses are known already, counted in these windows."""
        if self.keep:
            self._marks.update(marks)
        else:
            self.seen.update(marks)

    def sight(self, saddr: str, daddr: str, ts: float, tw: int, open_tw: int,
              event: Mapping[str, Any]) -> None:
        """A record whose ``saddr`` or ``daddr`` is not in ``seen``; its window ``tw``,
        the open window ``open_tw`` (``tw`` is lower for a late record)."""
        if not self.keep:
            for ip in (saddr, daddr):
                if ip not in self.seen:
                    self.seen.add(ip)
                    self._announce(ip, ts, tw)
            return
        counted = tw >= open_tw
        if saddr not in self.seen:
            self._sighted(saddr, ts, tw, counted)
        if daddr not in self.seen:
            # As the sweep's index counts: flows' destinations, or every one that is a profile.
            self._sighted(daddr, ts, tw, counted and (self._both or (
                bool(saddr) and "state" in event)))

    def _sighted(self, ip: str, ts: float, tw: int, counted: bool) -> None:
        marks = self._marks
        if ip in marks:
            if counted:
                marks[ip] = tw  # the open window: never lower than the mark
                self.seen.add(ip)
            return  # else its next counted sighting in this window is still needed
        self._announce(ip, ts, tw)
        # Nothing later in this window changes what follows: one that passes now is
        # forgotten at its end even if counted later (earlier than the sweep: harmless).
        self.seen.add(ip)
        if counted and ip not in self._stale:
            marks[ip] = tw
        else:
            self._passing.add(ip)

    def _announce(self, ip: str, ts: float, tw: int) -> None:
        if tw > self.new.get(ip, -1):
            self.new[ip] = tw
        self._emit(NEW_IP, {"ip": ip, "ts": ts})

    def forget(self, open_tw: int) -> int:
        """Traffic time reached window ``open_tw``: forget what the sweep is about to drop.
        Returns how many addresses were forgotten."""
        self.seen.clear()  # cleared, not replaced: the profiler's feed loop holds it
        self.seen.add("")
        forgotten = len(self._passing)
        self._passing.clear()
        self._stale.clear()
        cutoff = open_tw - self.keep
        if cutoff > 0:
            marks = self._marks
            self._stale.update(ip for ip, tw in marks.items() if tw < cutoff)
            for ip in self._stale:
                del marks[ip]
            forgotten += len(self._stale)
        return forgotten


def forget_profiles(profiles: dict[str, list[Any]], before: float) -> int:
    """Drop the profiles (ip -> [first_seen, last_seen, flows]) last seen before ``before``;
    in place, as the profiler's feed loop holds the dict. Returns how many."""
    stale = [ip for ip, profile in profiles.items() if profile[1] < before]
    for ip in stale:
        del profiles[ip]
    return len(stale)
