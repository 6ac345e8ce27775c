"""Suspicious DNS use, from dns.log (and conn.log for answers nobody connects to).

DNS_WITHOUT_CONNECTION: a host resolves internet names and never connects to their
addresses (DNS itself used as the channel, or names checked but not used).
HIGH_ENTROPY_DNS_TXT: a TXT answer that looks like encoded data (TXT tunnels, C2).
PRIVATE_IP_DNS_ANSWER: a public name answering with a private address (DNS rebinding).
DGA_NXDOMAINS: many names that do not exist (domain generation algorithms).
DNS_ARPA_SCAN: a burst of reverse lookups (mapping a network by its PTR records;
reverse.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from slipsd.events import Flow
from slipsd.modtools import CappedSet, powers
from slipsd.module import Module, Option
from slipsd.netinfo import is_group, is_private, is_public, parse_ip

from .helpers import (
    LINK_LOCAL_DNS_PORTS,
    MAX_UIDS,
    NAMES_CAP,
    Window,
    embeds_address,
    entropy,
    is_dnsbl_style,
    is_known_txt,
    is_local_name,
    is_reverse,
    is_service_name,
    listed,
    normalise,
    txt_payload,
)
from .reverse import ReverseLookups
from .unused import AnswerTracker, Query

SINGLE_REPORTS = 5  # names reported one by one per profile and window before counting


class Dns(Module):
    name = "dns"
    description = ("Suspicious DNS: answers never used, high-entropy TXT, private answers, "
                   "NXDOMAIN storms, reverse-lookup sweeps")
    channels = ("new_input", "new_dns", "new_flow")
    evidence_types = ("DNS_WITHOUT_CONNECTION", "HIGH_ENTROPY_DNS_TXT", "PRIVATE_IP_DNS_ANSWER",
                      "DGA_NXDOMAINS", "DNS_ARPA_SCAN")
    options = {
        "connection_wait": Option(float, 1800.0, "traffic seconds before or after a query in "
                                  "which a connection to an answered address must be seen"),
        "txt_entropy": Option(float, 5.0, "Shannon entropy (bits per character) of a TXT "
                              "answer that makes HIGH_ENTROPY_DNS_TXT"),
        "nxdomain_threshold": Option(int, 10, "distinct NXDOMAIN names of one host in a "
                                     "window that make DGA_NXDOMAINS"),
        "arpa_threshold": Option(int, 10, "distinct reverse lookups within arpa_seconds "
                                 "that make DNS_ARPA_SCAN"),
        "arpa_seconds": Option(float, 2.0, "traffic seconds the reverse lookups must fit in"),
        "pending_per_host": Option(int, 2000, "resolved names one host may have waiting for "
                                   "a connection; beyond it new ones are not judged"),
    }

    def setup(self, config: Mapping[str, Any]) -> None:
        self.wait = float(config["connection_wait"])
        self.txt_entropy = float(config["txt_entropy"])
        self.nx_threshold = max(1, int(config["nxdomain_threshold"]))
        self.arpa_threshold = max(1, int(config["arpa_threshold"]))
        self.arpa_seconds = float(config["arpa_seconds"])
        self.has_conn = True  # until new_input says otherwise
        self.tracker = AnswerTracker(self.wait, int(config["pending_per_host"]))
        self.talkers = CappedSet(200_000)  # profiles with conn records other than DNS
        self.servers = CappedSet(10_000)  # hosts answering other hosts' DNS queries
        self.origin: float | None = None
        self.width = 3600.0
        self.windows: dict[tuple[str, int], Window] = {}
        self.unused: dict[tuple[str, int], dict[str, str]] = {}  # DNS_WITHOUT_CONNECTION
        self.reverse = ReverseLookups(self.arpa_threshold, self.arpa_seconds, self.ctx.evidence)

    # ---- channels ----

    def on_new_input(self, event: Mapping[str, Any]) -> None:
        # Without conn records an unused answer proves nothing (Argus, nfdump, dns only).
        self.has_conn = "conn" in event["log_types"]

    def on_new_flow(self, flow: Flow) -> None:
        ts, duration, tracker = flow["ts"], flow["duration"], self.tracker
        end = ts + duration if duration > 0.0 else ts + 0.0  # as ts + max(0.0, duration)
        if flow["dport"] != 53:
            self.talkers.add(flow["profile"])
        if is_public(flow["daddr"]):
            due = tracker.flow(flow["profile"], flow["daddr"], ts, end)
        elif end > tracker.conn_clock:  # else the clock did not move: nothing falls due
            due = tracker.conn_time(end)
        else:
            return
        if due:
            self._judge(due)

    def on_new_dns(self, event: Mapping[str, Any]) -> None:
        self._on_dns(event)
        if event["ts"] > self.tracker.dns_clock:
            due = self.tracker.dns_time(event["ts"])
            if due:
                self._judge(due)

    def _on_dns(self, event: Mapping[str, Any]) -> None:
        saddr, daddr, dport = event["saddr"], event["daddr"], event["dport"]
        if dport == 53 and daddr and saddr and daddr != saddr:
            self.servers.add(daddr)
        if saddr in self.servers:
            return  # a resolver: its lookups are its clients', who are judged themselves
        name = normalise(event["query"])
        answers = [a for a in event["answers"] if isinstance(a, str)]
        self._check_txt(event, name, answers)
        if dport in LINK_LOCAL_DNS_PORTS or is_group(daddr) or not name:
            return
        if is_reverse(name):
            self.reverse.lookup(event, name, self._window(event))
        elif is_local_name(name):
            return
        elif event["rcode_name"] == "NXDOMAIN":
            self._check_nxdomain(event, name)
        else:
            self._check_private(event, name, answers)
            if self.has_conn and event["qtype_name"] in ("A", "AAAA"):
                ips = [a for a in answers if is_public(a)]
                if ips:  # a name without public answers waits for nothing
                    self.tracker.query(Query(event["profile"], saddr, name, event["ts"],
                                             event["tw"], event["uid"], [], 0), ips)

    def on_tw_closed(self, event: Mapping[str, Any]) -> None:
        self.windows.pop((event["profile"], event["tw"]), None)
        self.width = float(event["end"]) - float(event["start"])
        self.origin = float(event["start"]) - int(event["tw"]) * self.width
        end = float(event["end"])
        if end <= self.tracker.settled:
            return  # the other profiles' closings of a window already settled it
        self._judge(self.tracker.settle(end))
        # A window's unused names are complete once the conn log is past its end + wait.
        done = self.tracker.judged_until() - self.wait
        for key in [k for k in self.unused if self._window_end(k[1]) < done]:
            del self.unused[key]
        self.reverse.forget_before(self.tracker.dns_clock)

    def shutdown(self) -> None:
        # Names still waiting were resolved less than the wait before the conn log
        # ended: whether a connection would have followed is unknown, so they are
        # not reported.
        self._judge(self.tracker.finish())
        left = len(self.tracker.pending)
        if left:
            self.ctx.log.debug("%d resolved names left unjudged at the end of the run", left)

    # ---- DNS_WITHOUT_CONNECTION ----

    def _judge(self, queries: list[Query]) -> None:
        for query in queries:
            self._unused(query)

    def _unused(self, query: Query) -> None:
        # A host whose own connections the sensor never sees, or that resolves for
        # others, is expected to leave answers unused.
        if query.profile not in self.talkers or query.saddr in self.servers:
            return
        names = self.unused.setdefault((query.profile, query.tw), {})
        if query.name in names or len(names) >= NAMES_CAP:
            return
        names[query.name] = query.uid
        count = len(names)
        for level in powers(1, count - 1, count):
            if level == 1:
                description = (f"{query.saddr} resolved {query.name} to "
                               f"{listed(query.answers, 3)} but connected to none of these "
                               f"addresses within {self.wait:g} s of the query")
                threat, confidence = "low", 0.2
            else:
                description = (f"{query.saddr} resolved {level} internet names in this window "
                               f"without connecting to any of their addresses within "
                               f"{self.wait:g} s (e.g. {listed(names)})")
                threat, confidence = "low", 0.5 if level < 100 else 0.8
            self.ctx.evidence(
                "DNS_WITHOUT_CONNECTION", attacker=query.saddr, victim="",
                threat_level=threat, confidence=confidence, description=description,
                ts=query.ts, tw=query.tw, profile=query.profile,
                uids=tuple(list(names.values())[:MAX_UIDS]), key=f"names>={level}",
            )

    # ---- per-window findings ----

    def _window(self, event: Mapping[str, Any]) -> Window:
        key = (event["profile"], event["tw"])
        win = self.windows.get(key)
        if win is None:
            win = self.windows[key] = Window()
        return win

    def _window_end(self, tw: int) -> float:
        return math.inf if self.origin is None else self.origin + (tw + 1) * self.width

    def _check_txt(self, event: Mapping[str, Any], name: str, answers: list[str]) -> None:
        if name.startswith("_domainkey.") or "._domainkey." in name:
            return  # DKIM public keys: base64 by design, looked up by every mail server
        is_txt_query = event["qtype_name"] == "TXT"
        best, size = 0.0, 0
        for answer in answers:
            if answer.startswith("TXT "):
                payload = txt_payload(answer)
            elif is_txt_query and parse_ip(answer) is None:
                payload = answer  # older Zeek logs the text alone
            else:
                continue
            value = entropy(payload)
            if value > best and not is_known_txt(payload):
                best, size = value, len(payload)
        if best < self.txt_entropy:
            return
        win = self._window(event)
        if name in win.txt or len(win.txt) >= NAMES_CAP:
            return
        win.txt[name] = event["uid"]
        saddr = event["saddr"]
        if len(win.txt) <= SINGLE_REPORTS:
            self.ctx.evidence(
                "HIGH_ENTROPY_DNS_TXT", attacker=saddr, victim="", threat_level="low",
                confidence=0.6,
                description=(f"{saddr} got a {size}-character TXT answer for "
                             f"{name or '(no query)'} with an entropy of {best:.2f} bits "
                             f"per character (threshold {self.txt_entropy:g}), typical of "
                             f"encoded data"),
                ts=event["ts"], tw=event["tw"], profile=event["profile"],
                uids=(event["uid"],), key=name,
            )
        self._counted(event, "HIGH_ENTROPY_DNS_TXT", win.txt, 10, "medium", 0.7,
                      "names with high-entropy TXT answers")

    def _check_private(self, event: Mapping[str, Any], name: str, answers: list[str]) -> None:
        private = [a for a in answers if is_private(a) and not embeds_address(name, a)]
        if not private:
            return
        win = self._window(event)
        if name in win.private or len(win.private) >= NAMES_CAP:
            return
        win.private[name] = event["uid"]
        saddr = event["saddr"]
        if len(win.private) <= SINGLE_REPORTS:
            self.ctx.evidence(
                "PRIVATE_IP_DNS_ANSWER", attacker=saddr, victim="", threat_level="low",
                confidence=0.5,
                description=(f"the public name {name} resolved to the private address "
                             f"{listed(private, 3)} for {saddr} (DNS server "
                             f"{event['daddr'] or 'unknown'})"),
                ts=event["ts"], tw=event["tw"], profile=event["profile"],
                uids=(event["uid"],), key=name,
            )
        self._counted(event, "PRIVATE_IP_DNS_ANSWER", win.private, 10, "low", 0.7,
                      "public names resolved to private addresses")

    def _check_nxdomain(self, event: Mapping[str, Any], name: str) -> None:
        if is_service_name(name) or is_dnsbl_style(name):
            return
        win = self._window(event)
        if name in win.nxdomains or len(win.nxdomains) >= NAMES_CAP:
            return
        win.nxdomains[name] = event["uid"]
        count = len(win.nxdomains)
        for level in powers(self.nx_threshold, count - 1, count):
            high = level >= 10 * self.nx_threshold
            self.ctx.evidence(
                "DGA_NXDOMAINS", attacker=event["saddr"], victim="",
                threat_level="high" if high else "medium",
                confidence=(1.0 if level >= 100 * self.nx_threshold else 0.8) if high else 0.6,
                description=(f"{event['saddr']} asked for {level} distinct names that do not "
                             f"exist (NXDOMAIN) in this window (e.g. "
                             f"{listed(win.nxdomains)})"),
                ts=event["ts"], tw=event["tw"], profile=event["profile"],
                uids=tuple(list(win.nxdomains.values())[:MAX_UIDS]), key=f"names>={level}",
            )

    def _counted(self, event: Mapping[str, Any], type_: str, names: dict[str, str],
                 first: int, threat: str, confidence: float, what: str) -> None:
        """Past the names reported one by one, one evidence per power of ten."""
        count = len(names)
        for level in powers(first, count - 1, count):
            self.ctx.evidence(
                type_, attacker=event["saddr"], victim="", threat_level=threat,
                confidence=confidence,
                description=f"{event['saddr']} had {level} {what} in this window "
                            f"(e.g. {listed(names)})",
                ts=event["ts"], tw=event["tw"], profile=event["profile"],
                uids=tuple(list(names.values())[:MAX_UIDS]), key=f"names>={level}",
            )
