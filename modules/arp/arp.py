"""ARP and DHCP: scans, requests outside the segment, unsolicited replies, poisoning, IP changes.

ARP only works inside one layer-2 segment and has no authentication: any host
may claim any IP. The module keeps, for the run, which MAC each IP is bound to
(from ARP and DHCP) and which IP each MAC last used, and reports claims that
contradict a live binding. ARP and DHCP events are handled in traffic-time
order whatever order their batches arrive in (see helpers.Reorder).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from slipsd.events import TwClosed
from slipsd.module import Module, Option
from slipsd.netinfo import LocalNetworks, is_group, is_private, parse_ip

from .helpers import Bounded, Owner, Reorder, Scan, Window, add_uid

BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
_NOT_A_MAC = frozenset({"", "00:00:00:00:00:00", BROADCAST_MAC})
_LINK_LOCAL = ipaddress.ip_network("169.254.0.0/16")
MAX_PER_SOURCE = 10  # ARP_OUTSIDE_LOCALNET targets / DEVICE_CHANGING_IP addresses per window
MAX_WAITING = 50_000  # events held back for ordering
MAX_HOSTS = 65_536  # remembered IP -> MAC and MAC -> IP bindings
MAX_SCAN_TARGETS = 100_000


def _mac(value: Any) -> str:
    text = value.lower() if isinstance(value, str) else ""
    return "" if text in _NOT_A_MAC else text


def _ipv4(text: str) -> bool:
    ip = parse_ip(text)
    return ip is not None and ip.version == 4 and not ip.is_unspecified


class Arp(Module):
    name = "arp"
    description = ("ARP scans, ARP outside the local network, unsolicited ARP, ARP cache "
                   "poisoning and devices changing IP (from arp.log and dhcp.log)")
    channels = ("new_dhcp", "new_arp")  # this order: a DHCP lease explains a same-ts ARP
    evidence_types = ("ARP_SCAN", "ARP_OUTSIDE_LOCALNET", "UNSOLICITED_ARP", "ARP_MITM",
                      "DEVICE_CHANGING_IP")
    options = {
        "scan_targets": Option(int, 5, "distinct IPs one host must ARP for to be an ARP scan"),
        "scan_seconds": Option(float, 30.0, "sliding interval (traffic time) of an ARP scan"),
        "binding_ttl": Option(float, 3600.0, "seconds after which an unconfirmed IP-MAC "
                              "binding may be taken over by another MAC without ARP_MITM"),
    }

    def setup(self, config: Mapping[str, Any]) -> None:
        self.scan_targets = max(1, int(config["scan_targets"]))
        self.scan_seconds = float(config["scan_seconds"])
        self.binding_ttl = float(config["binding_ttl"])
        self.local = LocalNetworks(self.ctx.home_networks)
        self.queue = Reorder(self.channels, MAX_WAITING)
        self.owners: Bounded = Bounded(MAX_HOSTS)  # IP -> Owner
        self.mac_ip: Bounded = Bounded(MAX_HOSTS)  # MAC -> last IP it used without conflict
        self.windows: dict[int, Window] = {}

    # --- event plumbing -------------------------------------------------------------------

    def on_new_arp(self, event: dict[str, Any]) -> None:
        self.queue.push("new_arp", event)
        self._drain(self.queue.ready())

    def on_new_dhcp(self, event: dict[str, Any]) -> None:
        self.queue.push("new_dhcp", event)
        self._drain(self.queue.ready())

    def on_tw_closed(self, event: TwClosed) -> None:
        # Every event before the window's end has been delivered by now.
        self._drain(self.queue.before(event["end"]))
        for tw in [tw for tw in self.windows if tw <= event["tw"]]:
            del self.windows[tw]

    def shutdown(self) -> None:
        self._drain(self.queue.before(None))

    def _drain(self, events: Any) -> None:
        for channel, event in events:
            if channel == "new_arp":
                self._arp(event)
            else:
                self._dhcp(event)

    def _report(self, ev: dict[str, Any], type_: str, *, attacker: str, victim: str, key: str,
                cap: str = "", **fields: Any) -> None:
        """Report once per (type, attacker, victim, key) and window; at most MAX_PER_SOURCE
        different keys per (type, cap) when ``cap`` is given."""
        window = self.windows.setdefault(ev["tw"], Window())
        ident = (type_, attacker, victim, key)
        if ident in window.reported:
            return
        if cap:
            count = window.counts.get((type_, cap), 0)
            if count >= MAX_PER_SOURCE:
                return
            window.counts[(type_, cap)] = count + 1
        window.reported.add(ident)
        uid = ev.get("uid") or ""
        self.ctx.evidence(type_, attacker=attacker, victim=victim, key=key, ts=ev["ts"],
                          tw=ev["tw"], uids=fields.pop("uids", (uid,) if uid else ()), **fields)

    # --- ARP --------------------------------------------------------------------------------

    def _arp(self, ev: dict[str, Any]) -> None:
        spa, tpa = ev["saddr"], ev["daddr"]
        if not _ipv4(spa):  # 0.0.0.0 probes (RFC 5227) claim nothing and ask for nothing
            return
        operation = str(ev.get("operation") or "").lower()
        mac = _mac(ev.get("orig_hw")) or _mac(ev.get("src_mac"))
        gratuitous = spa == tpa
        dst_mac = str(ev.get("dst_mac") or "").lower()
        if operation == "request" and not gratuitous and _ipv4(tpa):
            # A unicast request revalidates a neighbour already in the cache (RFC 1122);
            # discovering unknown addresses, as scanners do, needs the broadcast MAC.
            if not _mac(dst_mac):
                self._scan(ev, spa, tpa)
            self._outside(ev, spa, tpa)
        if operation == "reply" and dst_mac == BROADCAST_MAC:
            self._report(
                ev, "UNSOLICITED_ARP", attacker=spa, victim="", key="",
                threat_level="low", confidence=0.6,
                description=(f"{spa} broadcast an unsolicited ARP reply announcing {spa} is at "
                             f"{mac or '?'} (sent to ff:ff:ff:ff:ff:ff, target {tpa or '?'})"),
            )
        if mac:
            self._claim(ev, spa, mac, announce=operation == "reply" or gratuitous)

    def _scan(self, ev: dict[str, Any], spa: str, tpa: str) -> None:
        window = self.windows.setdefault(ev["tw"], Window())
        scan = window.scans.get(spa)
        if scan is None:
            scan = window.scans[spa] = Scan()
        add_uid(scan.uids, ev.get("uid") or "")
        if scan.targets is None:
            recent = scan.recent
            recent[tpa] = ev["ts"]
            recent.move_to_end(tpa)
            horizon = ev["ts"] - self.scan_seconds
            while recent and next(iter(recent.values())) < horizon:
                recent.popitem(last=False)
            if len(recent) < self.scan_targets:
                return
            scan.targets = set(recent)
            scan.next_level = self.scan_targets
            recent.clear()
        elif len(scan.targets) < MAX_SCAN_TARGETS:
            scan.targets.add(tpa)
        count = len(scan.targets)
        if count < scan.next_level:
            return
        level = scan.next_level
        scan.next_level *= 10
        first = level == self.scan_targets
        confidence = 0.6 if first else 0.8 if level == self.scan_targets * 10 else 1.0
        span = f"within {self.scan_seconds:g} s" if first else "in this window"
        self._report(
            ev, "ARP_SCAN", attacker=spa, victim="", key=str(level),
            threat_level="medium", confidence=confidence, uids=tuple(scan.uids),
            description=(f"{spa} sent ARP requests for {count} distinct IPs {span} "
                         f"(ARP scan, threshold {level}; latest target {tpa})"),
        )

    def _segment(self, spa: str) -> tuple[ipaddress.IPv4Network | None, bool]:
        """The sender's layer-2 network and whether it is configured (else guessed)."""
        ip = parse_ip(spa)
        assert ip is not None
        nets = [n for n in self.local.configured if isinstance(n, ipaddress.IPv4Network)
                and ip in n]
        if nets:
            return max(nets, key=lambda n: n.prefixlen), True
        if not is_private(spa):
            return None, False  # a public LAN's size cannot be guessed
        prefix = 16 if ip in _LINK_LOCAL else 24
        return ipaddress.IPv4Network(f"{spa}/{prefix}", strict=False), False

    def _outside(self, ev: dict[str, Any], spa: str, tpa: str) -> None:
        net, configured = self._segment(spa)
        target = parse_ip(tpa)
        if net is None or target is None or target in net or target in _LINK_LOCAL \
                or is_group(tpa):
            return
        # A guessed /24 can be too narrow for a private target; a public one is outside anyway.
        confidence = 0.8 if configured or not is_private(tpa) else 0.5
        how = "configured" if configured else "assumed"
        self._report(
            ev, "ARP_OUTSIDE_LOCALNET", attacker=spa, victim=tpa, key="", cap=spa,
            threat_level="low", confidence=confidence,
            description=(f"{spa} sent an ARP request for {tpa}, outside its local network "
                         f"{net} ({how}); ARP cannot reach beyond one segment"),
        )

    # --- bindings ---------------------------------------------------------------------------

    def _claim(self, ev: dict[str, Any], ip: str, mac: str, announce: bool) -> None:
        """An ARP packet saying ``ip`` is at ``mac``."""
        owner = self.owners.get(ip)
        if owner is None or owner.mac == mac or ev["ts"] - owner.seen > self.binding_ttl:
            self.owners.put(ip, Owner(mac, ev["ts"]))
            self._uses(ev, mac, ip, "ARP")
        elif announce:
            self._mitm(ev, ip, mac, owner)

    def _mitm(self, ev: dict[str, Any], ip: str, mac: str, owner: Owner) -> None:
        attacker = self.mac_ip.get(mac) or ip
        known = attacker != ip
        who = f"{attacker} (MAC {mac})" if known else f"MAC {mac}"
        self._report(
            ev, "ARP_MITM", attacker=attacker, victim=ip, key=mac, cap=mac,
            threat_level="high", confidence=0.9 if known else 0.7,
            description=(f"{who} claims {ip} by ARP, but {ip} is bound to {owner.mac} "
                         f"(confirmed {ev['ts'] - owner.seen:.0f} s before): "
                         "possible ARP cache poisoning"),
        )

    def _uses(self, ev: dict[str, Any], mac: str, ip: str, how: str) -> None:
        """``mac`` uses ``ip`` legitimately (no conflicting binding)."""
        before = self.mac_ip.get(mac)
        self.mac_ip.put(mac, ip)
        if before is None or before == ip or not (is_private(before) and is_private(ip)):
            return
        self._report(
            ev, "DEVICE_CHANGING_IP", attacker=ip, victim="", key=mac, cap=mac,
            threat_level="info", confidence=0.8,
            description=f"device {mac} used {before} and now uses {ip} (seen in {how})",
        )

    # --- DHCP -------------------------------------------------------------------------------

    def _dhcp(self, ev: dict[str, Any]) -> None:
        mac = _mac(ev.get("mac"))
        assigned = ev.get("assigned_addr")
        ip = assigned if isinstance(assigned, str) and _ipv4(assigned) else ev["saddr"]
        if not mac or not _ipv4(ip):
            return
        # A DHCP lease is an authoritative binding: it replaces whatever ARP said before.
        self.owners.put(ip, Owner(mac, ev["ts"]))
        self._uses(ev, mac, ip, "DHCP")
