"""Traffic records -> profiles and time windows -> typed events on the bus.

Runs inside the ingest process, right after parsing, so a flow never pays a
process hop between reading and profiling. All state of a run's profiles is
written to the store in one pipeline per batch. Which windows are closed, and the
tw_closed events, are kept by slipsd/profiler_windows.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slipsd._seen import Addresses, forget_profiles
from slipsd.profiler_windows import TimeWindows
from slipsd.store import Producer, Store
from slipsd.store._traffic import WindowDelta

if TYPE_CHECKING:
    from slipsd.whitelist import Whitelist


@dataclass
class ProfilerCounts:
    flows: int = 0
    late: int = 0  # events whose window had already been closed
    whitelisted: int = 0  # records dropped by the whitelist, never published
    by_channel: dict[str, int] = field(default_factory=dict)

    @property
    def events(self) -> int:
        return sum(self.by_channel.values())


class Profiler:
    def __init__(
        self,
        store: Store,
        producer: Producer,
        *,
        width: float = 3600.0,
        direction: str = "out",
        batch_size: int = 500,
        whitelist: Whitelist | None = None,
        keep_windows: int = 0,
    ) -> None:
        """``keep_windows`` > 0 (a live run): forget what the retention sweep deletes from
        Redis, as it does (slipsd/_seen.py); 0 (an analysis): remember everything."""
        self._store = store
        # Only a whitelist that filters traffic costs anything per record.
        self._whitelist = whitelist if whitelist is not None and whitelist.filters_flows \
            else None
        self._producer = producer
        self._width = width
        self._both = direction == "all"
        self._batch_size = batch_size
        # Profile and window counters are summed in memory over several batches:
        # far fewer Redis commands, and still flushed before any window closes.
        self._store_every = batch_size * 20
        self._since_store = 0
        self.start: float | None = None
        self._max_ts = 0.0
        self._windows = TimeWindows(producer.emit, width)
        self._keep = keep_windows
        self._addresses = Addresses(producer.emit, keep_windows, both=self._both)
        # ip -> [first_seen, last_seen, flows]; a list, as it changes with every record.
        self._profiles: dict[str, list[Any]] = {}
        # What the records since the last store write added, per (profile, window). Its
        # keys also tell which profiles changed and which windows are active (_write_store).
        self._deltas: dict[tuple[str, int], WindowDelta] = {}
        self._pending_counts: dict[str, int] = {}
        self.counts = ProfilerCounts()
        # by_channel when the counters were last written: the stats' events.<channel>
        # are the difference, so a record costs one counter update, not two.
        self._stored_by_channel: dict[str, int] = {}

    def resume(self, start: float | None, seen_ips: Mapping[str, int],
               profiles: Mapping[str, tuple[float, float, int]] | None = None) -> None:
        """Continue a live run after a restart: same window origin, addresses not new again
        (each counted in the window given), profiles going on from their stored counters.
        Traffic time resumes at the profiles' last record: later records are late."""
        self.start = start
        self._addresses.load(seen_ips)
        for ip, (first, last, flows) in (profiles or {}).items():
            self._profiles[ip] = [first, last, flows]
            self._max_ts = max(self._max_ts, last)
        if start is not None and self._profiles:
            current = self._windows.next_close = self.window_of(self._max_ts)
            # The open window's profiles before the restart: to be closed with it.
            self._windows.active[current] = {
                ip for ip, p in self._profiles.items() if self.window_of(p[1]) == current}
            if self._keep:
                self._forget(current)

    def window_of(self, ts: float) -> int:
        assert self.start is not None
        return max(0, int((ts - self.start) // self._width))

    def feed(self, ts: float, channel: str, event: dict[str, Any]) -> None:
        self.feed_all(((ts, channel, event),))

    def feed_all(self, records: Iterable[tuple[float, str, dict[str, Any]]]) -> None:
        """Profile and publish ``(ts, channel, event)`` records, in the order given."""
        # The per-record path, once per input line: plain comparisons and dict updates on
        # locals, the outgoing side's bookkeeping inline. The containers held in locals
        # are only ever cleared, never replaced, by flushes and store writes.
        whitelist = self._whitelist
        width = self._width
        seen = self._addresses.seen
        sight = self._addresses.sight
        profiles = self._profiles
        deltas = self._deltas
        producer = self._producer
        emit = producer.emit
        counts = self.counts
        by_channel = counts.by_channel
        batch_size = self._batch_size
        both = self._both
        next_close = self._windows.next_close
        for ts, channel, event in records:
            if whitelist is not None and whitelist.drops_event(channel, event):
                self._count_whitelisted(channel)
                continue
            start = self.start
            if start is None:
                start = self._begin(ts)
            tw = int((ts - start) // width)  # as window_of
            if tw < 0:
                tw = 0
            if ts > self._max_ts:
                self._max_ts = ts
                if tw > next_close:
                    self._close_passed_windows()
                    next_close = self._windows.next_close
            if tw < next_close:
                counts.late += 1
            saddr = event.get("saddr") or ""
            daddr = event.get("daddr") or ""
            if saddr not in seen or daddr not in seen:  # once per address (and window)
                sight(saddr, daddr, ts, tw, next_close, event)
            if saddr:
                profile = profiles.get(saddr)
                if profile is None:
                    profile = profiles[saddr] = [ts, ts, 0]
                elif ts > profile[1]:
                    profile[1] = ts
                elif ts < profile[0]:
                    profile[0] = ts
                key = (saddr, tw)
                delta = deltas.get(key)
                if delta is None:
                    delta = deltas[key] = WindowDelta()
                if "state" in event:  # only conn records are flows
                    profile[2] += 1
                    counts.flows += 1
                    _add_flow(delta, event, daddr)
            if both and daddr:
                self._touch_destination(daddr, ts, tw, event)
            event["profile"] = saddr
            event["tw"] = tw
            emit(channel, event)
            by_channel[channel] = by_channel.get(channel, 0) + 1
            if producer.buffered >= batch_size:
                self._since_store += producer.buffered
                self.flush(store=self._since_store >= self._store_every)

    def _count_whitelisted(self, channel: str) -> None:
        # As if the record were not in the input: no profile, window, new_ip or event.
        self.counts.whitelisted += 1
        name = f"whitelisted.{channel}"
        self._pending_counts[name] = self._pending_counts.get(name, 0) + 1

    def _begin(self, ts: float) -> float:
        """The first record: windows count from its time."""
        self.start = ts
        self._store.set_run_meta(first_ts=ts, width=self._width)
        return ts

    def _touch_destination(self, ip: str, ts: float, tw: int, event: dict[str, Any]) -> None:
        """With analysis_direction = all, the destination's profile and window too."""
        profile = self._profiles.get(ip)
        if profile is None:
            profile = self._profiles[ip] = [ts, ts, 0]
        elif ts > profile[1]:
            profile[1] = ts
        elif ts < profile[0]:
            profile[0] = ts
        delta = self._deltas.get((ip, tw))
        if delta is None:
            delta = self._deltas[(ip, tw)] = WindowDelta()
        if "state" in event:
            delta.flows_in += 1

    def _close_passed_windows(self) -> None:
        assert self.start is not None
        current = self.window_of(self._max_ts)
        if current <= self._windows.next_close:
            return
        # Everything already emitted must reach the store and the bus before
        # readers are told the windows are closed (and the store write completes
        # the active windows).
        self.flush()
        self._windows.close_before(current, self.start)
        if self._keep:
            self._forget(current)
        self.flush()

    def _forget(self, current: int) -> None:
        """Traffic time reached window ``current``: forget what the retention sweep deletes
        (or is about to) from Redis, so that what comes back is new again, as it is there.
        Only between store writes: no buffered window delta may name a forgotten profile."""
        assert self.start is not None and not self._deltas
        counts = self._pending_counts
        ips = self._addresses.forget(current)
        cutoff = current - self._keep
        profiles = forget_profiles(self._profiles, self.start + cutoff * self._width) \
            if cutoff > 0 else 0
        for name, n in (("forgotten.ips", ips), ("forgotten.profiles", profiles)):
            if n:
                counts[name] = counts.get(name, 0) + n

    def flush(self, store: bool = True) -> None:
        """Publish buffered events; with ``store``, write profile and window counters first."""
        if store:
            self._write_store()
            self._since_store = 0
        self._producer.flush()

    def _write_store(self) -> None:
        stored = self._stored_by_channel
        for channel, n in self.counts.by_channel.items():
            if n != stored.get(channel, 0):
                name = f"events.{channel}"
                self._pending_counts[name] = (self._pending_counts.get(name, 0)
                                              + n - stored.get(channel, 0))
                stored[channel] = n
        profiles = self._profiles
        changed: dict[str, tuple[float, float, int]] = {}
        for ip, _ in self._deltas:
            if ip not in changed:
                first, last, flows = profiles[ip]
                changed[ip] = (first, last, flows)
        self._windows.note(self._deltas)
        new_ips = self._addresses.new
        if new_ips or changed or self._pending_counts:
            self._store.write_traffic(list(new_ips), changed, self._deltas, self._pending_counts,
                                      new_ips if self._keep else None)
        # Cleared, not replaced: feed_all holds them.
        new_ips.clear()
        self._deltas.clear()
        self._pending_counts = {}

    def finish(self) -> None:
        """End of input: close every open window, then end the run's streams."""
        self.flush()
        self._windows.close_all(self.start)
        self._producer.close()


def _add_flow(delta: WindowDelta, event: dict[str, Any], daddr: str) -> None:
    delta.flows += 1
    delta.sbytes += event.get("sbytes") or 0
    delta.dbytes += event.get("dbytes") or 0
    dst_ips = delta.dst_ips
    dst_ips[daddr] = dst_ips.get(daddr, 0) + 1
    port = (event.get("proto", ""), event.get("dport", 0), event.get("state", ""))
    dst_ports = delta.dst_ports
    try:
        dst_ports[port] = dst_ports.get(port, 0) + 1
    except TypeError:  # an unhashable value (no Zeek conn record has one): as text at once
        name = f"{port[0]}/{port[1]}/{port[2]}"
        dst_ports[name] = dst_ports.get(name, 0) + 1
