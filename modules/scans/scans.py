"""Scans: many targets probed without a conversation, seen in conn, dhcp and notice logs.

HORIZONTAL_PORT_SCAN (one port, many hosts), VERTICAL_PORT_SCAN (one host, many
ports), ICMP_SCAN (ICMP requests to many hosts, or many port-unreachable replies),
DHCP_SCAN (one client requesting many addresses) and ZEEK_NOTICE_SCAN (Zeek's own
scan and password-guessing notices). Counts are per profile and time window and
reported at the threshold, then at 10x and 100x it (see tally.py).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

from slipsd.events import Flow, TwClosed
from slipsd.module import Module, Option
from slipsd.netinfo import is_group

from .tally import Budget, Tally, WindowState, grade

# Zeek states in which the responder never took part in a conversation.
NOT_ESTABLISHED = frozenset({"S0", "REJ", "RSTOS0", "RSTRH", "SH", "SHR"})
# ICMP request types that only make sense when probing whether hosts exist.
ICMP_REQUESTS_V4 = {8: "echo", 13: "timestamp", 17: "address mask"}
ICMP_REQUESTS_V6 = {128: "echo"}
# (type, code) of "port unreachable": the reply to a probe of a closed UDP port.
PORT_UNREACHABLE = {(3, 3), (1, 4)}
# Classic traceroute probes one UDP port a hop from here: not a port scan.
TRACEROUTE_PORTS = range(33434, 33535)
DEFAULT_NOTICES = [
    "Scan::Port_Scan", "Scan::Address_Scan", "Scan::Random_Scan", "SSH::Password_Guessing",
    "ICMP::ICMPAddressScan", "ICMP::TimestampScan", "ICMP::AddressMaskScan",
]


def not_established(flow: Flow) -> bool:
    state = flow["state"]
    no_data = not flow["sbytes"] and not flow["dbytes"]
    if state in NOT_ESTABLISHED:
        return True
    if state == "OTH" or flow["proto"] == "tcp":
        return no_data
    return False


class Scans(Module):
    name = "scans"
    description = "Horizontal, vertical, ICMP and DHCP scans, and Zeek's scan notices"
    channels = ("new_flow", "new_dhcp", "new_notice")
    evidence_types = (
        "HORIZONTAL_PORT_SCAN", "VERTICAL_PORT_SCAN", "ICMP_SCAN", "DHCP_SCAN",
        "ZEEK_NOTICE_SCAN",
    )
    options = {
        "horizontal_threshold": Option(int, 10, "hosts probed on one port in a window"),
        "vertical_threshold": Option(int, 10, "ports probed on one host in a window"),
        "icmp_threshold": Option(int, 10, "hosts sent ICMP requests of one type in a window"),
        "unreachable_threshold": Option(
            int, 10, "ICMP port-unreachable replies one host sends another in a window"),
        "dhcp_threshold": Option(int, 4, "distinct addresses one DHCP client requests"),
        "notices": Option(list, DEFAULT_NOTICES, "Zeek notice names reported as scans"),
        "max_entries": Option(int, 200_000, "targets remembered per profile and window"),
    }

    def setup(self, config: Mapping[str, Any]) -> None:
        self.horizontal = max(1, config["horizontal_threshold"])
        self.vertical = max(1, config["vertical_threshold"])
        self.icmp = max(1, config["icmp_threshold"])
        self.unreachable = max(1, config["unreachable_threshold"])
        self.dhcp = max(1, config["dhcp_threshold"])
        self.notices = frozenset(config["notices"])
        self.max_entries = config["max_entries"]
        self.windows: dict[tuple[str, int], WindowState] = {}
        self.newest_tw = -1

    def _state(self, profile: str, tw: int) -> WindowState:
        if tw > self.newest_tw:
            self.newest_tw = tw
            # DHCP records without a client address have no profile, so no
            # tw_closed ever comes for them: drop whatever is two windows old.
            stale = [k for k in self.windows if k[1] < tw - 1]
            for k in stale:
                del self.windows[k]
        state = self.windows.get((profile, tw))
        if state is None:
            state = self.windows[(profile, tw)] = WindowState(Budget(self.max_entries))
        return state

    @staticmethod
    def _count(table: dict[Any, Tally], key: Hashable, threshold: int, state: WindowState,
               item: Hashable, uid: str, label: str = "") -> tuple[Tally, int] | None:
        """Add a distinct item to a tally; (tally, level) when a level is reached."""
        tally = table.get(key)
        if tally is None:
            if state.budget.left <= 0:
                return None
            state.budget.left -= 1
            tally = table[key] = Tally(threshold)
        level = tally.add(item, uid, state.budget, label)
        return (tally, level) if level else None

    def on_new_flow(self, flow: Flow) -> None:
        saddr, daddr = flow["saddr"], flow["daddr"]
        if not daddr or daddr == saddr or is_group(daddr):
            return
        if flow["proto"] == "icmp":
            self._icmp(flow)
        elif flow["proto"] in ("tcp", "udp") and not_established(flow):
            self._ports(flow)

    def _ports(self, flow: Flow) -> None:
        state = self._state(flow["profile"], flow["tw"])
        proto, dport, daddr, uid = flow["proto"], flow["dport"], flow["daddr"], flow["uid"]
        hit = self._count(state.horizontal, (proto, dport), self.horizontal, state, daddr, uid)
        if hit:
            tally, level = hit
            self._report(
                "HORIZONTAL_PORT_SCAN", flow, "", f"{proto}/{dport}:{level}", tally,
                self.horizontal,
                f"{flow['saddr']} made connection attempts without reply or data to "
                f"{tally.size} hosts on port {dport}/{proto} (e.g. {', '.join(tally.examples)})")
        if proto == "udp" and dport in TRACEROUTE_PORTS:
            return
        hit = self._count(state.vertical, daddr, self.vertical, state, (proto, dport), uid,
                          f"{dport}/{proto}")
        if hit:
            tally, level = hit
            self._report(
                "VERTICAL_PORT_SCAN", flow, daddr, str(level), tally, self.vertical,
                f"{flow['saddr']} made connection attempts without reply or data to "
                f"{tally.size} ports of {daddr} (e.g. {', '.join(tally.examples)})")

    def _icmp(self, flow: Flow) -> None:
        # Zeek logs ICMP type and code in the port fields.
        kind, code, daddr = flow["sport"], flow["dport"], flow["daddr"]
        requests = ICMP_REQUESTS_V6 if ":" in daddr else ICMP_REQUESTS_V4
        if kind in requests:
            state = self._state(flow["profile"], flow["tw"])
            hit = self._count(state.icmp, kind, self.icmp, state, daddr, flow["uid"])
            if hit:
                tally, level = hit
                self._report(
                    "ICMP_SCAN", flow, "", f"type{kind}:{level}", tally, self.icmp,
                    f"{flow['saddr']} sent ICMP {requests[kind]} requests (type {kind}) to "
                    f"{tally.size} hosts (e.g. {', '.join(tally.examples)})")
        elif (kind, code) in PORT_UNREACHABLE:
            # The flow goes from the probed host back to the prober.
            state = self._state(flow["profile"], flow["tw"])
            tally = state.unreachable.get(daddr)
            if tally is None:
                if state.budget.left <= 0:
                    return
                state.budget.left -= 1
                tally = state.unreachable[daddr] = Tally(self.unreachable)
            level = tally.add_many(flow["spkts"], flow["uid"], flow["saddr"])
            if level:
                _, confidence = grade(tally.size, self.unreachable)
                self.ctx.evidence(
                    "ICMP_SCAN", attacker=daddr, victim=flow["saddr"], threat_level="low",
                    confidence=confidence,
                    description=(f"{flow['saddr']} answered {tally.size} probes from {daddr} "
                                 "with ICMP port unreachable: closed UDP ports were probed"),
                    ts=flow["ts"], tw=flow["tw"], uids=tuple(tally.uids),
                    key=f"unreachable:{level}")

    def _report(self, type_: str, flow: Flow, victim: str, key: str, tally: Tally,
                threshold: int, description: str) -> None:
        threat, confidence = grade(tally.size, threshold)
        self.ctx.evidence(
            type_, attacker=flow["saddr"], victim=victim, threat_level=threat,
            confidence=confidence, description=description, ts=flow["ts"], tw=flow["tw"],
            profile=flow["profile"], uids=tuple(tally.uids), key=key)

    def on_new_dhcp(self, event: dict[str, Any]) -> None:
        requested = event.get("requested_addr")
        if not isinstance(requested, str) or not requested:
            return
        mac = event.get("mac") if isinstance(event.get("mac"), str) else ""
        client = mac or event["saddr"]
        if not client:
            return
        # A client without an address yet still sends from 0.0.0.0.
        attacker = event["saddr"] or "0.0.0.0"
        state = self._state(event["profile"], event["tw"])
        hit = self._count(state.dhcp, client, self.dhcp, state, requested, event["uid"])
        if not hit:
            return
        tally, level = hit
        threat, confidence = grade(tally.size, self.dhcp)
        who = f"{attacker} ({mac})" if mac else attacker
        self.ctx.evidence(
            "DHCP_SCAN", attacker=attacker, victim=event["daddr"], threat_level=threat,
            confidence=confidence,
            description=(f"DHCP client {who} requested {tally.size} different addresses "
                         f"(e.g. {', '.join(tally.examples)})"),
            ts=event["ts"], tw=event["tw"], uids=tuple(tally.uids), key=f"{client}:{level}")

    def on_new_notice(self, event: dict[str, Any]) -> None:
        note = event.get("note")
        if not isinstance(note, str) or note not in self.notices:
            return
        src, dst = event.get("src"), event.get("dst")
        attacker = src if isinstance(src, str) and src else event["saddr"]
        victim = dst if isinstance(dst, str) and dst else event["daddr"]
        if not attacker:
            return
        state = self._state(event["profile"], event["tw"])
        if (note, attacker) in state.notices:
            return  # one per note, attacker and window, whatever the victims
        state.notices.add((note, attacker))
        guessing = "Guessing" in note
        msg = str(event.get("msg") or "")[:200]
        self.ctx.evidence(
            "ZEEK_NOTICE_SCAN", attacker=attacker, victim=victim,
            threat_level="high" if guessing else "medium", confidence=0.8,
            description=f"Zeek notice {note} about {attacker}: {msg}",
            ts=event["ts"], tw=event["tw"], uids=(event["uid"],) if event["uid"] else (),
            key=note)

    def on_tw_closed(self, event: TwClosed) -> None:
        self.windows.pop((event["profile"], event["tw"]), None)
