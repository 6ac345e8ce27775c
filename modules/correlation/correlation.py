"""Flows that other Zeek logs should explain but do not.

CONNECTION_WITHOUT_DNS: a host talks to an internet address no DNS answer seen on
the network ever contained. NON_HTTP_PORT_80 / NON_TLS_PORT_443: an established
TCP connection with payload to port 80 / 443 that Zeek never parsed as HTTP / TLS,
a classic sign of a custom protocol hiding behind an open web port.

Every channel is in traffic-time order but channels interleave only per batch, so
a flow is held until the log that could explain it has moved past the flow (its
own clock), a window has closed past it (the profiler flushes everything before
closing), or the run ends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from slipsd.events import Flow, TwClosed
from slipsd.modtools import CappedSet, TrafficClock, WindowState, powers
from slipsd.module import Module, Option
from slipsd.netinfo import LocalNetworks, is_public, parse_ip

from .helpers import (
    ESTABLISHED,
    Held,
    RecordIndex,
    Window,
    service_has,
)

# Connections made by IP by design: DNS itself (plain, TLS, mDNS, LLMNR), DHCP, NTP, NetBIOS.
NO_NAME_PORTS = frozenset({53, 67, 68, 123, 137, 138, 853, 5353, 5355})
SINGLE_REPORTS = 5  # destinations reported one by one per profile and window
DESTINATIONS_CAP = 10_000  # distinct unresolved destinations counted per profile and window
APP_WAITING_CAP = 20  # held port-80/443 flows per source, destination, port and window
APP_PROTOCOLS = {80: ("http", "NON_HTTP_PORT_80", "HTTP"), 443: ("ssl", "NON_TLS_PORT_443", "TLS")}


class Correlation(Module):
    name = "correlation"
    description = ("Flows without the DNS answer or application log that should explain them "
                   "(CONNECTION_WITHOUT_DNS, NON_HTTP_PORT_80, NON_TLS_PORT_443)")
    channels = ("new_input", "new_flow", "new_dns", "new_http", "new_ssl")
    evidence_types = ("CONNECTION_WITHOUT_DNS", "NON_HTTP_PORT_80", "NON_TLS_PORT_443")
    options = {
        "grace_seconds": Option(float, 30.0, "seconds after the first event in which "
                                "connections without DNS are not reported"),
        "early_seconds": Option(float, 300.0, "seconds after the first event in which "
                                "CONNECTION_WITHOUT_DNS has a lower confidence"),
        "dns_wait_seconds": Option(float, 10.0, "traffic seconds a flow waits for a late "
                                   "DNS answer before it is judged"),
        "match_seconds": Option(float, 300.0, "an HTTP/TLS record between the same hosts this "
                                "close to a port 80/443 flow explains it"),
    }

    def setup(self, config: Mapping[str, Any]) -> None:
        self.grace = float(config["grace_seconds"])
        self.early = float(config["early_seconds"])
        self.dns_wait = float(config["dns_wait_seconds"])
        self.match = max(1.0, float(config["match_seconds"]))
        self.local = LocalNetworks(self.ctx.home_networks)
        self.start = math.inf
        self.resolved = CappedSet(200_000)  # addresses seen in DNS answers
        self.dns_servers = CappedSet(10_000)
        self.dns_clients = CappedSet(100_000)
        self.records = {"http": RecordIndex(self.match), "ssl": RecordIndex(self.match)}
        # Flows wait for the log that could explain them, each on that log's clock.
        self.for_dns: TrafficClock[Held] = TrafficClock(("dns",), self._judge_dns, 50_000)
        self.waiting = {"dns": self.for_dns,
                        "http": TrafficClock(("http",), self._judge_app, 50_000),
                        "ssl": TrafficClock(("ssl",), self._judge_app, 50_000)}
        self.windows: WindowState[Window] = WindowState(Window)

    # ---- input ----

    def on_new_input(self, event: Mapping[str, Any]) -> None:
        # A flow-only input (Argus, nfdump) has no dns, http or ssl records: a
        # connection without them proves nothing there, and is not held for them.
        for waiting in self.waiting.values():
            waiting.provided(event["log_types"])

    def on_new_flow(self, flow: Flow) -> None:
        ts = flow["ts"]
        if ts < self.start:
            self.start = ts
        saddr = flow["saddr"]
        if saddr not in self.local.sources:
            self.local.learn(saddr)
        if self.for_dns.clocks:  # dns.log is provided
            self._hold_for_dns(flow)
        if flow["dport"] in APP_PROTOCOLS and flow["proto"] == "tcp":
            self._hold_for_app(flow)

    def on_new_dns(self, event: Mapping[str, Any]) -> None:
        ts = event["ts"]
        if ts < self.start:
            self.start = ts
        resolved = self.resolved
        for answer in event["answers"]:
            # An answer already kept is an address: no parsing again.
            if isinstance(answer, str):
                if answer in resolved:
                    resolved.move_to_end(answer)
                elif parse_ip(answer) is not None:
                    resolved.add(answer)
        saddr, daddr = event["saddr"], event["daddr"]
        clients, servers = self.dns_clients, self.dns_servers
        if saddr in clients:
            clients.move_to_end(saddr)
        elif saddr:
            clients.add(saddr)
        if daddr in servers:
            servers.move_to_end(daddr)
        elif daddr:
            servers.add(daddr)
        waiting = self.for_dns
        if ts > waiting.horizon:
            waiting.tick("dns", ts)

    def on_new_http(self, event: Mapping[str, Any]) -> None:
        self._record("http", event)

    def on_new_ssl(self, event: Mapping[str, Any]) -> None:
        self._record("ssl", event)

    def on_tw_closed(self, event: TwClosed) -> None:
        self.windows.learn(event)
        end = float(event["end"])
        # The three queues settle together: one answer speaks for all.
        if all([waiting.settle(end) for waiting in self.waiting.values()]):
            # Held flows may still need their window's state; keep a margin past the end.
            margin = self.match + self.dns_wait + self.windows.width
            self.windows.forget_ending_before(end - margin)
            for index in self.records.values():
                index.forget_before(end - margin - self.windows.width)

    def shutdown(self) -> None:
        for waiting in self.waiting.values():
            waiting.finish()

    # ---- http and ssl records ----

    def _record(self, kind: str, event: Mapping[str, Any]) -> None:
        ts = event["ts"]
        if ts < self.start:
            self.start = ts
        self.records[kind].add(event["saddr"], event["daddr"], ts, event["uid"])
        waiting = self.waiting[kind]
        if ts > waiting.horizon:
            waiting.tick(kind, ts)

    # ---- CONNECTION_WITHOUT_DNS ----

    def _hold_for_dns(self, flow: Flow) -> None:
        proto = flow["proto"]
        if flow["dport"] in NO_NAME_PORTS or proto not in ("tcp", "udp"):
            return
        if proto == "tcp":
            answered = flow["state"] in ESTABLISHED and flow["sbytes"] + flow["dbytes"] > 0
        else:
            answered = flow["sbytes"] > 0 and flow["dbytes"] > 0
        daddr = flow["daddr"]
        if not answered or daddr in self.resolved or not is_public(daddr):
            return
        win = self.windows.get(flow["tw"])
        found = win.unresolved.get(flow["profile"])
        pair = (flow["profile"], daddr)
        if (found is not None and daddr in found) or pair in win.dns_waiting:
            return
        win.dns_waiting.add(pair)
        item = Held("dns", flow["ts"], flow["uid"], flow["saddr"], daddr, flow["dport"], proto,
                    flow["tw"], flow["profile"], flow["sbytes"], flow["dbytes"])
        self.for_dns.hold(item.ts + self.dns_wait, item)

    def _judge_dns(self, item: Held) -> None:
        win = self.windows.get(item.tw)
        win.dns_waiting.discard((item.profile, item.daddr))
        if item.ts < self.start + self.grace or item.saddr not in self.dns_clients:
            return  # before the capture's own DNS, or a host whose DNS the sensor cannot see
        if (item.daddr in self.resolved or item.daddr in self.dns_servers
                or self.local.contains(item.daddr)):
            return
        found = win.unresolved.setdefault(item.profile, {})
        if item.daddr in found or len(found) >= DESTINATIONS_CAP:
            return
        found[item.daddr] = None
        count = len(found)
        early = item.ts < self.start + self.early
        confidence = 0.3 if early else 0.7
        if count <= SINGLE_REPORTS:
            self.ctx.evidence(
                "CONNECTION_WITHOUT_DNS", attacker=item.saddr, victim=item.daddr,
                threat_level="low", confidence=confidence,
                description=(f"{item.saddr} connected to {item.daddr}:{item.dport}/{item.proto} "
                             f"without any DNS answer for that address being seen"
                             + (" (early in the capture)" if early else "")),
                ts=item.ts, tw=item.tw, profile=item.profile, uids=(item.uid,), key="",
            )
        for level in powers(10, count - 1, count):
            sample = ", ".join(list(found)[:SINGLE_REPORTS])
            self.ctx.evidence(
                "CONNECTION_WITHOUT_DNS", attacker=item.saddr, victim="",
                threat_level="low", confidence=confidence,
                description=(f"{item.saddr} connected to {level} internet addresses without "
                             f"any DNS answer for them being seen in this window "
                             f"(first: {sample})"),
                ts=item.ts, tw=item.tw, profile=item.profile, uids=(item.uid,),
                key=f"destinations>={level}",
            )

    # ---- NON_HTTP_PORT_80 / NON_TLS_PORT_443 ----

    def _hold_for_app(self, flow: Flow) -> None:
        kind, _, _ = APP_PROTOCOLS[flow["dport"]]
        waiting = self.waiting[kind]
        if not waiting.clocks:  # the input has no such log
            return
        history = flow["history"]
        # Zeek must have seen the connection open to run protocol detection on it.
        if flow["state"] not in ESTABLISHED or (history and "S" not in history):
            return
        words = ("http",) if kind == "http" else ("ssl", "tls")
        if flow["sbytes"] <= 0 or service_has(flow["service"], words):
            return
        if flow["uid"] in self.records[kind].uids:
            return
        win = self.windows.get(flow["tw"])
        key = (flow["saddr"], flow["daddr"], flow["dport"])
        held = win.app_waiting.get(key, 0)
        if key in win.app_reported or held >= APP_WAITING_CAP:
            return
        win.app_waiting[key] = held + 1
        ts = flow["ts"]
        hi = ts + max(0.0, flow["duration"]) + self.match
        item = Held(kind, ts, flow["uid"], flow["saddr"], flow["daddr"], flow["dport"], "tcp",
                    flow["tw"], flow["profile"], flow["sbytes"], flow["dbytes"],
                    lo=ts - self.match, hi=hi)
        waiting.hold(hi, item)

    def _judge_app(self, item: Held) -> None:
        win = self.windows.get(item.tw)
        key = (item.saddr, item.daddr, item.dport)
        if key in win.app_waiting:
            win.app_waiting[key] -= 1
        index = self.records[item.kind]
        if item.uid in index.uids or key in win.app_reported:
            return
        if index.any_between(item.saddr, item.daddr, item.lo, item.hi):
            return
        win.app_reported.add(key)
        _, type_, proto = APP_PROTOCOLS[item.dport]
        # Without a single record of that log in the run, only Zeek's service field speaks.
        confidence = 0.8 if index.seen else 0.5
        self.ctx.evidence(
            type_, attacker=item.saddr, victim=item.daddr, threat_level="medium",
            confidence=confidence,
            description=(f"established TCP connection from {item.saddr} to "
                         f"{item.daddr}:{item.dport} carried {item.sbytes} bytes out and "
                         f"{item.dbytes} bytes back, but Zeek saw no {proto} between these "
                         f"hosts within {self.match:g} s of it"),
            ts=item.ts, tw=item.tw, profile=item.profile, uids=(item.uid,),
            key=str(item.dport),
        )
