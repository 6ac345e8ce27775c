"""Deterministic Zeek records for the beaconing tests: beacons and benign look-alikes.

    traffic = Traffic(seed=1)
    traffic.beacon("192.168.1.20", "203.0.113.80", period=60, jitter=0.2, until=3 * HOUR)
    traffic.browsing("192.168.1.30", until=3 * HOUR)
    traffic.write(folder)                       # conn.log, dns.log, ssl.log, http.log (JSON)
    for channel, event in traffic.events(): ... # as the profiler would publish them

Jitter is Cobalt-Strike-like sleep jitter: every gap is the period times a
uniform factor in [1 - jitter, 1 + jitter]; sizes vary the same way with
``size_jitter``. The same seed and calls give the same records, byte for byte.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slipsd.inputs._zeek_norm import SCHEMAS, KeyMap

START = 1_700_002_800.0  # a window boundary for 3600 s windows (multiple of 3600)
HOUR = 3600.0
DAY = 86400.0
RESOLVER = "192.168.1.1"
Record = dict[str, Any]


class Traffic:
    def __init__(self, seed: int = 1, start: float = START) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.logs: dict[str, list[Record]] = {"conn": [], "dns": [], "ssl": [], "http": []}
        self.serial = 0

    # ---- single records ----

    def _uid(self) -> str:
        self.serial += 1
        return f"CBeacon{self.serial:011d}"

    def conn(self, ts: float, src: str, dst: str, dport: int, proto: str = "tcp",
             sbytes: int = 300, dbytes: int = 1200, service: str = "", state: str = "SF",
             duration: float = 0.4) -> str:
        uid = self._uid()
        self.logs["conn"].append({
            "ts": round(ts, 6), "uid": uid, "id.orig_h": src,
            "id.orig_p": 30000 + self.serial % 30000, "id.resp_h": dst, "id.resp_p": dport,
            "proto": proto, **({"service": service} if service else {}), "duration": duration,
            "orig_bytes": sbytes, "resp_bytes": dbytes, "conn_state": state,
            "history": "ShADadFf" if proto == "tcp" else "Dd", "orig_pkts": 6,
            "resp_pkts": 6})
        return uid

    def lookup(self, ts: float, src: str, name: str, answers: list[str]) -> None:
        uid = self.conn(ts, src, RESOLVER, 53, "udp", 40, 90, "dns", duration=0.01)
        self.logs["dns"].append({
            "ts": round(ts, 6), "uid": uid, "id.orig_h": src,
            "id.orig_p": 30000 + self.serial % 30000,
            "id.resp_h": RESOLVER, "id.resp_p": 53, "proto": "udp", "query": name,
            "qtype_name": "A", "rcode_name": "NOERROR", "answers": answers,
            "TTLs": [60.0] * len(answers)})

    def visit(self, ts: float, src: str, dst: str, name: str | None, sbytes: int,
              port: int = 443) -> None:
        """One connection, with its TLS or HTTP record when it has a name."""
        service = "ssl" if port == 443 else "http" if port == 80 else ""
        uid = self.conn(ts, src, dst, port, sbytes=sbytes,
                        dbytes=int(sbytes * self.rng.uniform(2, 20)), service=service)
        base = {"ts": round(ts + 0.05, 6), "uid": uid, "id.orig_h": src,
                "id.orig_p": 30000 + self.serial % 30000,
                "id.resp_h": dst, "id.resp_p": port}
        if name and service == "ssl":
            self.logs["ssl"].append({**base, "version": "TLSv13", "server_name": name,
                                     "established": True})
        elif name and service == "http":
            self.logs["http"].append({**base, "method": "GET", "host": name, "uri": "/",
                                      "status_code": 200})

    # ---- behaviours ----

    def beacon(self, src: str, dst: str | list[str], period: float, jitter: float = 0.0,
               until: float = 6 * HOUR, size: int = 400, size_jitter: float = 0.1,
               name: str | None = None, port: int = 443, resolve: bool = True,
               offset: float = 0.0) -> int:
        """Beats every period*(1 +- jitter) s, each to one of ``dst`` at random; their count."""
        ips = [dst] if isinstance(dst, str) else dst
        ts, count = self.start + offset + self.rng.uniform(0, period), 0
        while ts < self.start + until:
            ip = ips[0] if len(ips) == 1 else self.rng.choice(ips)
            if name and resolve:
                self.lookup(ts - 0.03, src, name, [ip])
            sbytes = round(size * (1 + self.rng.uniform(-size_jitter, size_jitter)))
            self.visit(ts, src, ip, name, sbytes, port)
            count += 1
            ts += period * (1 + self.rng.uniform(-jitter, jitter))
        return count

    def browsing(self, src: str, until: float = 6 * HOUR, sites: int = 6) -> None:
        """A person: sessions of page views (bursts of connections), idle in between."""
        names = [(f"www.site{i}.example.com", f"203.0.113.{10 + i}") for i in range(sites)]
        cdn = ("cdn.example.net", "198.51.100.200")
        ts = self.start + self.rng.uniform(0, 300)
        while ts < self.start + until:
            session_end = ts + self.rng.uniform(600, 2400)
            name, ip = self.rng.choice(names)
            while ts < session_end:
                self.lookup(ts - 0.02, src, name, [ip])
                for i in range(self.rng.randint(1, 6)):
                    self.visit(ts + i * 0.1, src, ip, name,
                               int(self.rng.lognormvariate(6.5, 0.9)))
                for i in range(self.rng.randint(0, 4)):
                    self.visit(ts + 0.3 + i * 0.05, src, cdn[1], cdn[0],
                               int(self.rng.lognormvariate(6, 0.7)))
                ts += self.rng.lognormvariate(3.5, 1.1)  # think time, median ~33 s
                if self.rng.random() < 0.15:
                    name, ip = self.rng.choice(names)
            ts = session_end + self.rng.uniform(300, 3600)

    def ntp(self, src: str, server: str, until: float = 6 * HOUR) -> None:
        """An NTP client: the poll interval doubles from 64 s to 1024 s and stays there."""
        poll, ts = 64.0, self.start + self.rng.uniform(0, 10)
        while ts < self.start + until:
            self.conn(ts, src, server, 123, "udp", 48, 48, "ntp", duration=0.03)
            ts += poll * (1 + self.rng.uniform(-0.02, 0.02))
            poll = min(1024.0, poll * 2)

    def dns(self, src: str, until: float = 6 * HOUR, server: str = RESOLVER) -> None:
        """Lookups of assorted names, some of them on a timer (DNS is excluded by port)."""
        ts = self.start + self.rng.uniform(0, 30)
        while ts < self.start + until:
            uid = self.conn(ts, src, server, 53, "udp", 40, 120, "dns", duration=0.01)
            self.logs["dns"].append({
                "ts": round(ts, 6), "uid": uid, "id.orig_h": src,
                "id.orig_p": 30000 + self.serial % 30000,
                "id.resp_h": server, "id.resp_p": 53, "proto": "udp",
                "query": f"host{self.rng.randint(1, 50)}.example.org", "qtype_name": "A",
                "rcode_name": "NOERROR", "answers": ["203.0.113.99"], "TTLs": [30.0]})
            ts += 30.0 * (1 + self.rng.uniform(-0.05, 0.05))

    def update_checks(self, src: str, dst: str, name: str, days: float = 7,
                      low: float = 3 * HOUR, high: float = 9 * HOUR) -> int:
        """A few checks a day at irregular times (gaps uniform in [low, high])."""
        ts, count = self.start + self.rng.uniform(0, low), 0
        while ts < self.start + days * DAY:
            self.lookup(ts - 0.02, src, name, [dst])
            self.visit(ts, src, dst, name, int(self.rng.uniform(600, 700)))
            count += 1
            ts += self.rng.uniform(low, high)
        return count

    # ---- output ----

    def records(self) -> list[tuple[str, Record]]:
        """Every record of every log, merged in time order (as the Zeek reader does)."""
        merged = [(rec["ts"], log, i, rec) for log, recs in self.logs.items()
                  for i, rec in enumerate(recs)]
        merged.sort(key=lambda item: (item[0], item[1], item[2]))
        return [(log, rec) for _, log, _, rec in merged]

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        by_log: dict[str, list[Record]] = {log: [] for log in self.logs}
        for log, rec in self.records():
            by_log[log].append(rec)
        for log, recs in by_log.items():
            if recs:
                with open(folder / f"{log}.log", "w") as handle:
                    handle.writelines(json.dumps(r) + "\n" for r in recs)
        return folder

    def events(self, width: float = HOUR, batch: int = 1,
               app_first: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
        """(channel, event) in the order a module would read them, tw_closed included.

        With ``batch`` > 1 the records come in groups, one channel after the other
        within a group (conn first, or the others first with ``app_first``): the
        cross-channel order of the real bus.
        """
        yield "new_input", {"source": "zeek", "log_types": sorted(self.logs)}
        keymaps = {log: KeyMap(SCHEMAS[log]) for log in self.logs}  # Zeek name -> event key
        order = ["dns", "http", "ssl", "conn"] if app_first else ["conn", "dns", "http", "ssl"]
        profiles: dict[int, set[str]] = {}
        current = 0
        items = self.records()
        for first in range(0, len(items), batch):
            group = items[first:first + batch]
            tw_now = int((group[-1][1]["ts"] - self.start) // width)
            for log in order:
                for kind, rec in group:
                    if kind == log:
                        event = _normalise(log, keymaps[log], rec, self.start, width)
                        profiles.setdefault(event["tw"], set()).add(event["profile"])
                        yield SCHEMAS[log].channel, event
            for tw in range(current, tw_now):
                yield from _closed(profiles.pop(tw, set()), tw, self.start, width)
            current = max(current, tw_now)
        for tw in sorted(profiles):
            yield from _closed(profiles[tw], tw, self.start, width)


def _normalise(log: str, keymap: KeyMap, rec: Record, start: float,
               width: float) -> dict[str, Any]:
    schema = SCHEMAS[log]
    event: dict[str, Any] = dict(schema.prefill)
    for name, value in rec.items():
        event[keymap[name]] = value
    schema.finish(event)
    event["profile"] = event["saddr"]
    event["tw"] = int((event["ts"] - start) // width)
    return event


def _closed(profiles: set[str], tw: int, start: float,
            width: float) -> Iterator[tuple[str, dict[str, Any]]]:
    for profile in sorted(profiles):
        yield "tw_closed", {"profile": profile, "tw": tw, "start": start + tw * width,
                            "end": start + (tw + 1) * width}


def run(ctx: Any, traffic: Traffic, **kwargs: Any) -> list[Any]:
    """Feed a ModuleTestContext everything, close every window, finish; all evidence."""
    for channel, event in traffic.events(**kwargs):
        if channel == "tw_closed":
            ctx.close_window(event["profile"], event["tw"], event["start"],
                             event["end"] - event["start"])
        else:
            ctx.feed(channel, event)
    ctx.finish()
    return list(ctx.evidence)
