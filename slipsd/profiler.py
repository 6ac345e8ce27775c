"""Traffic records -> profiles and time windows -> typed events on the bus.

Runs inside the ingest process, right after parsing, so a flow never pays a
process hop between reading and profiling. All state of a run's profiles is
written to the store in one pipeline per batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from slipsd.events import NEW_IP, TW_CLOSED
from slipsd.store import Producer, Store
from slipsd.store._store import WindowDelta

if TYPE_CHECKING:
    from slipsd.whitelist import Whitelist


@dataclass
class _Profile:
    first_seen: float
    last_seen: float
    flows: int = 0


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
    ) -> None:
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
        self._next_close = 0  # windows below this index are closed
        self._seen_ips: set[str] = set()
        self._new_ips: list[str] = []
        self._profiles: dict[str, _Profile] = {}
        self._dirty: set[str] = set()
        self._deltas: dict[tuple[str, int], WindowDelta] = {}
        self._active: dict[int, set[str]] = {}  # open window -> profiles seen in it
        self._pending_counts: dict[str, int] = {}
        self.counts = ProfilerCounts()
        # by_channel when the counters were last written: the stats' events.<channel>
        # are the difference, so a record costs one counter update, not two.
        self._stored_by_channel: dict[str, int] = {}

    def resume(self, start: float | None, seen_ips: set[str]) -> None:
        """Continue a live run after a restart: same window origin, IPs not new again."""
        self.start = start
        self._seen_ips = set(seen_ips)

    def window_of(self, ts: float) -> int:
        assert self.start is not None
        return max(0, int((ts - self.start) // self._width))

    def feed(self, ts: float, channel: str, event: dict[str, Any]) -> None:
        # The per-record path: plain comparisons and dict updates, no helper calls
        # beyond _touch, since it runs once per input line.
        if self._whitelist is not None and self._whitelist.drops_event(channel, event):
            # As if the record were not in the input: no profile, window, new_ip or event.
            self.counts.whitelisted += 1
            name = f"whitelisted.{channel}"
            self._pending_counts[name] = self._pending_counts.get(name, 0) + 1
            return
        start = self.start
        if start is None:
            start = self.start = ts
            self._store.set_run_meta(first_ts=ts, width=self._width)
        if ts > self._max_ts:
            self._max_ts = ts
            self._close_passed_windows()
        tw = int((ts - start) // self._width)  # as window_of
        if tw < 0:
            tw = 0
        if tw < self._next_close:
            self.counts.late += 1
        saddr = event.get("saddr") or ""
        daddr = event.get("daddr") or ""
        seen = self._seen_ips
        if saddr not in seen or daddr not in seen:
            for ip in (saddr, daddr):
                if ip and ip not in seen:
                    seen.add(ip)
                    self._new_ips.append(ip)
                    self._producer.emit(NEW_IP, {"ip": ip, "ts": ts})
        if saddr:
            self._touch(saddr, ts, tw, event, True)
        if self._both and daddr:
            self._touch(daddr, ts, tw, event, False)
        event["profile"] = saddr
        event["tw"] = tw
        producer = self._producer
        producer.emit(channel, event)
        by_channel = self.counts.by_channel
        by_channel[channel] = by_channel.get(channel, 0) + 1
        if producer.buffered >= self._batch_size:
            self._since_store += producer.buffered
            self.flush(store=self._since_store >= self._store_every)

    def _touch(self, ip: str, ts: float, tw: int, event: dict[str, Any], outgoing: bool) -> None:
        profile = self._profiles.get(ip)
        if profile is None:
            profile = self._profiles[ip] = _Profile(ts, ts)
        elif ts > profile.last_seen:
            profile.last_seen = ts
        elif ts < profile.first_seen:
            profile.first_seen = ts
        self._dirty.add(ip)
        if tw >= self._next_close:
            active = self._active.get(tw)
            if active is None:
                active = self._active[tw] = set()
            active.add(ip)
        delta = self._deltas.get((ip, tw))
        if delta is None:
            delta = self._deltas[(ip, tw)] = WindowDelta()
        if "state" not in event:  # only conn records are flows
            return
        if outgoing:
            profile.flows += 1
            self.counts.flows += 1
            delta.flows += 1
            delta.sbytes += event.get("sbytes") or 0
            delta.dbytes += event.get("dbytes") or 0
            daddr = event.get("daddr") or ""
            dst_ips = delta.dst_ips
            dst_ips[daddr] = dst_ips.get(daddr, 0) + 1
            port = f"{event.get('proto', '')}/{event.get('dport', 0)}/{event.get('state', '')}"
            dst_ports = delta.dst_ports
            dst_ports[port] = dst_ports.get(port, 0) + 1
        else:
            delta.flows_in += 1

    def _close_passed_windows(self) -> None:
        assert self.start is not None
        current = self.window_of(self._max_ts)
        if current <= self._next_close:
            return
        closing = sorted(tw for tw in self._active if tw < current)
        # Everything already emitted must reach the store and the bus before
        # readers are told the windows are closed.
        self.flush()
        for tw in closing:
            self._emit_closed(tw, self._active.pop(tw))
        self._next_close = current
        self.flush()

    def _emit_closed(self, tw: int, profiles: Iterable[str]) -> None:
        assert self.start is not None
        start = self.start + tw * self._width
        for ip in sorted(profiles):
            self._producer.emit(
                TW_CLOSED, {"profile": ip, "tw": tw, "start": start, "end": start + self._width}
            )

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
        fields = {
            ip: {
                "first_seen": self._profiles[ip].first_seen,
                "last_seen": self._profiles[ip].last_seen,
                "flows": self._profiles[ip].flows,
            }
            for ip in self._dirty
        }
        if self._new_ips or fields or self._deltas or self._pending_counts:
            self._store.write_traffic(self._new_ips, fields, self._deltas, self._pending_counts)
        self._new_ips = []
        self._dirty = set()
        self._deltas = {}
        self._pending_counts = {}

    def finish(self) -> None:
        """End of input: close every open window, then end the run's streams."""
        self.flush()
        for tw in sorted(self._active):
            self._emit_closed(tw, self._active[tw])
        self._active = {}
        self._producer.close()
