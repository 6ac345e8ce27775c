"""COMMAND_AND_CONTROL_BEACON: a host contacting one destination at a steady rhythm.

Implants call home on a timer (with some jitter) and send much the same bytes
every time; people browse in irregular bursts. Per profile and destination (the
domain when ssl, http or dns records name it, else the IP) and port, a ring of
the last beats is kept across windows and scored with robust statistics of its
gaps and sizes each time it gains a beat (stats.py; the maths is in
docs/evidence.md). Infrastructure ports, multicast and, by default, private
destinations are left out.

Names come from dns, http and ssl records, which reach the module in order with
the conn records only batch by batch: a flow waits until those logs have moved
past it (or a window closed past it, or the run ended) before it is placed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slipsd.events import Flow, TwClosed
from slipsd.modtools import Deadlines, TrafficClock
from slipsd.module import Module, Option
from slipsd.netinfo import is_group, is_public, parse_ip

from .helpers import Capped, Held, Track, TrackKey, Tracks, domain
from .stats import Rhythm, rhythm, timely

DEFAULT_IGNORED = ["53", "67", "68", "123", "137", "138", "161", "162", "853", "1900",
                   "3702", "5353", "5355"]
NAME_CHANNELS = ("dns", "http", "ssl")
NAME_WAIT = 5.0  # traffic seconds a flow waits for the records naming its destination
HELD_CAP = 100_000
UID_NAMES_CAP = 50_000  # names of connections not placed yet (or never a candidate)
IP_NAMES_CAP = 100_000  # (client, address) -> the name it last used for that address
RING = 64  # beats kept per destination
REPORTS_PER_WINDOW = 20  # destinations reported per profile and window
MAX_CONFIDENCE = 0.9
FEW_BEATS_EXTRA = 0.15  # score asked on top of min_score at min_connections beats
REGULAR_SHARE = 0.75  # of the gaps must lie within 2 x time_tolerance of the period
# Builds a Held without the Python-level __new__ of a NamedTuple (once per flow).
_held = tuple.__new__


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Beaconing(Module):
    name = "beaconing"
    description = "Periodic connections to one destination (COMMAND_AND_CONTROL_BEACON)"
    channels = ("new_input", "new_flow", "new_dns", "new_http", "new_ssl")
    evidence_types = ("COMMAND_AND_CONTROL_BEACON",)
    options = {
        "min_connections": Option(int, 10, "beats (connections more than burst_seconds "
                                  "apart) to one destination before it is judged"),
        "min_span": Option(float, 300.0, "seconds the judged beats must span"),
        "min_period": Option(float, 10.0, "shortest median gap (seconds) reported"),
        "max_period": Option(float, 3600.0, "longest median gap (seconds) reported"),
        "burst_seconds": Option(float, 2.0, "connections this close to the previous beat's "
                                "start belong to that beat"),
        "time_tolerance": Option(float, 0.2, "largest MAD of the gaps, as a fraction of "
                                 "their median, that still counts as periodic"),
        "min_score": Option(float, 0.6, "regularity score (0..1) that makes evidence"),
        "ignore_ports": Option(list, DEFAULT_IGNORED, "destination ports never judged "
                               "(DNS, DHCP, NTP, NetBIOS, SNMP, SSDP, mDNS, LLMNR, ...)"),
        "private_destinations": Option(bool, False, "also judge private (non-internet) "
                                       "destinations"),
        "max_destinations": Option(int, 10_000, "destination tracks kept in each of the "
                                   "two LRU segments"),
    }

    def setup(self, config: Mapping[str, Any]) -> None:
        self.min_beats = min(RING, max(3, int(config["min_connections"])))
        self.min_span = float(config["min_span"])
        self.min_period = float(config["min_period"])
        self.max_period = float(config["max_period"])
        self.burst = max(0.0, float(config["burst_seconds"]))
        self.tolerance = float(config["time_tolerance"])
        self.min_score = float(config["min_score"])
        self.ignored = frozenset(int(p) for p in config["ignore_ports"])
        self.private = bool(config["private_destinations"])
        self.tracks = Tracks(int(config["max_destinations"]))
        self.uid_names: Capped[str, str] = Capped(UID_NAMES_CAP)
        self.ip_names: Capped[tuple[str, str], str] = Capped(IP_NAMES_CAP)
        # Held flows are placed once the slowest naming log has passed them.
        self.waiting: TrafficClock[Held] = TrafficClock(NAME_CHANNELS, self._place, HELD_CAP)
        self.reports: dict[tuple[str, int], int] = {}
        self.closed: Deadlines[tuple[str, int]] = Deadlines(HELD_CAP)

    # ---- events ----

    def on_new_input(self, event: Mapping[str, Any]) -> None:
        # Waiting for a log the input never produces (Argus, nfdump) would hold every
        # flow until its window closes.
        self.waiting.provided(event["log_types"])

    def on_new_flow(self, flow: Flow) -> None:
        daddr, dport, proto = flow["daddr"], flow["dport"], flow["proto"]
        if proto not in ("tcp", "udp") or dport in self.ignored or is_group(daddr):
            return
        if not (is_public(daddr) or (self.private and parse_ip(daddr) is not None)):
            return
        ts = flow["ts"]
        held = _held(Held, (ts, flow["uid"], flow["saddr"], daddr, dport, proto,
                            flow["sbytes"], flow["tw"], flow["profile"]))
        # TrafficClock.hold, inline: a method call per flow shows.
        waiting = self.waiting
        if ts + NAME_WAIT <= waiting.horizon:
            self._place(held)
        else:
            waiting.push(ts + NAME_WAIT, held, self._place)

    def on_new_dns(self, event: Mapping[str, Any]) -> None:
        name = domain(event["query"])
        if name and event["saddr"]:
            for answer in event["answers"]:
                if isinstance(answer, str) and parse_ip(answer) is not None:
                    self.ip_names.set((event["saddr"], answer), name)
        ts, waiting = event["ts"], self.waiting
        if ts > waiting.horizon:  # else this log cannot move the horizon
            waiting.tick("dns", ts)

    def on_new_http(self, event: Mapping[str, Any]) -> None:
        name = domain(event.get("host"))
        if name and event["uid"]:
            self.uid_names.setdefault(event["uid"], name)
        ts, waiting = event["ts"], self.waiting
        if ts > waiting.horizon:  # else this log cannot move the horizon
            waiting.tick("http", ts)

    def on_new_ssl(self, event: Mapping[str, Any]) -> None:
        name = domain(event.get("server_name"))
        if name and event["uid"]:
            self.uid_names.setdefault(event["uid"], name)
        ts, waiting = event["ts"], self.waiting
        if ts > waiting.horizon:  # else this log cannot move the horizon
            waiting.tick("ssl", ts)

    def on_tw_closed(self, event: TwClosed) -> None:
        waiting = self.waiting
        waiting.settle(float(event["end"]))
        # Flows of the window's last seconds may still wait for their names.
        window = (event["profile"], event["tw"])
        self.closed.push(float(event["end"]) + NAME_WAIT, window, self._forget)
        self.closed.release(waiting.settled, self._forget)

    def shutdown(self) -> None:
        self.waiting.finish()
        if self.tracks.evicted:
            self.ctx.log.info("beaconing forgot %d destination tracks (max_destinations)",
                              self.tracks.evicted)

    def _forget(self, window: tuple[str, int]) -> None:
        self.reports.pop(window, None)

    # ---- placing flows ----

    def _place(self, held: Held) -> None:
        name = self.uid_names.pop(held.uid)
        if name:
            self.ip_names.set((held.saddr, held.daddr), name)
        else:
            name = self.ip_names.get((held.saddr, held.daddr))
        key: TrackKey = (held.profile, name or held.daddr, held.dport, held.proto)
        track = self.tracks.place(key, held, self.burst, RING)
        if track is None:
            return
        times = track.times
        if track.reported_tw >= held.tw or len(times) < self.min_beats:
            return
        # The span and the gaps turn down nearly every destination: judge them before
        # measuring the sizes.
        if times[-1] - times[0] < self.min_span:
            return
        gaps = timely(times, self.tolerance, self.min_period, self.max_period,
                      REGULAR_SHARE)
        if gaps is None:
            return
        r = rhythm(times, track.sizes, gaps, self.tolerance)
        if self._periodic(r):
            self._report(key, track, r, held)

    def _periodic(self, r: Rhythm) -> bool:
        # A chance regularity is likelier among few beats: ask for more until there
        # are twice min_connections.
        extra = FEW_BEATS_EXTRA * max(0.0, 1.0 - (r.beats - self.min_beats) / self.min_beats)
        return (r.span >= self.min_span and self.min_period <= r.period <= self.max_period
                and r.time_dispersion <= self.tolerance and r.regular >= REGULAR_SHARE
                and r.score >= self.min_score + extra)

    # ---- evidence ----

    def _report(self, key: TrackKey, track: Track, r: Rhythm, held: Held) -> None:
        window = (held.profile, held.tw)
        done = self.reports.get(window, 0)
        if done >= REPORTS_PER_WINDOW:
            return
        self.reports[window] = done + 1
        track.reported_tw = held.tw
        _, label, port, proto = key
        where = f"{label} ({held.daddr})" if label != held.daddr else held.daddr
        # More beats make a chance regularity less likely; benign heartbeats (device
        # clouds, telemetry) look the same, so it never reaches certainty.
        confidence = MAX_CONFIDENCE * r.score * (0.7 + 0.3 * min(1.0, r.beats / 32))
        self.ctx.evidence(
            "COMMAND_AND_CONTROL_BEACON",
            attacker=held.saddr,
            victim=held.daddr,
            threat_level="medium",
            confidence=round(confidence, 3),
            description=(
                f"{held.saddr} contacted {where} on {port}/{proto} {r.beats} times in "
                f"{_human(r.span)}, every {_human(r.period)} (median gap; MAD "
                f"{r.time_dispersion:.0%}), sending about {r.size:.0f} bytes each time (MAD "
                f"{r.size_dispersion:.0%}); regularity score {r.score:.2f}"
            ),
            ts=held.ts,
            tw=held.tw,
            profile=held.profile,
            uids=tuple(track.uids),
            key=f"{label}:{port}/{proto}",
        )
