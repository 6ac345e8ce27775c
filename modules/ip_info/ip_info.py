"""Enrichment, no evidence: what is known about an address, stored as its ip info.

Country and autonomous system come from the [geoip] databases, the MAC vendor
from Debian's IEEE OUI list (ieee-data), host names from the DNS answers and
DHCP leases seen in the traffic, and optionally from reverse DNS. Everything is
looked up once per address and run, so the cost does not grow with the flows.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slipsd.module import Module, Option
from slipsd.netinfo import is_private, is_public

MAX_NAMES = 5  # host names kept per address: enough to recognise it, bounded


def load_oui(path: Path) -> dict[str, str]:
    """'00-22-72   (hex)\\t\\tVendor' lines of the IEEE list -> {'002272': 'Vendor'}."""
    vendors: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            prefix, sep, vendor = line.partition("(hex)")
            if sep:
                vendors[prefix.strip().replace("-", "").lower()] = vendor.strip()
    return vendors


class IpInfo(Module):
    name = "ip_info"
    description = "Country, AS, MAC vendor and host names of addresses (enrichment)"
    channels = ("new_ip", "new_flow", "new_dns", "new_arp", "new_dhcp")
    options = {
        "oui_file": Option(str, "/usr/share/ieee-data/oui.txt",
                           "IEEE OUI list giving MAC vendors; missing: no vendors"),
        # Off by default: it sends DNS queries about the monitored traffic, and an
        # analysis waits at its end for the lookups still queued.
        "reverse_dns": Option(bool, False, "also ask the system resolver for PTR names of "
                              "public addresses"),
    }

    def setup(self, config: Mapping[str, Any]) -> None:
        self.oui_path = Path(config["oui_file"])
        self.vendors: dict[str, str] | None = None  # loaded at the first MAC
        self.macs: dict[str, str] = {}  # ip -> MAC already stored
        self.names: dict[str, list[str]] = {}
        self.lookups: queue.Queue[str | None] | None = None
        if config["reverse_dns"]:
            self.lookups = queue.Queue()
            self.resolver = threading.Thread(target=self._resolve, name="rdns", daemon=True)
            self.resolver.start()

    def on_new_ip(self, event: Mapping[str, Any]) -> None:
        ip = event["ip"]
        if not is_public(ip):
            return
        fields: dict[str, Any] = {}
        country = self.ctx.geoip.country(ip)
        if country:
            fields["country"] = country
        asn = self.ctx.geoip.asn(ip)
        if asn:
            fields["asn"], fields["as_org"] = asn
        if fields:
            self.ctx.set_ip_info(ip, **fields)
        if self.lookups is not None:
            self.lookups.put(ip)

    def on_new_flow(self, flow: Mapping[str, Any]) -> None:
        # Only the source's own MAC: a remote peer's frames carry the router's.
        mac = flow.get("smac")
        if mac and is_private(flow["saddr"]):
            self._mac(flow["saddr"], mac)

    def on_new_arp(self, event: Mapping[str, Any]) -> None:
        mac = event.get("src_mac")
        if mac and event.get("saddr"):
            self._mac(event["saddr"], mac)

    def on_new_dhcp(self, event: Mapping[str, Any]) -> None:
        ip = event.get("assigned_addr") or event.get("saddr")
        if not ip:
            return
        if event.get("mac"):
            self._mac(ip, event["mac"])
        if event.get("host_name"):
            self._name(ip, str(event["host_name"]))

    def on_new_dns(self, event: Mapping[str, Any]) -> None:
        query = event.get("query") or ""
        if not query or query.endswith(".arpa"):
            return
        for answer in event.get("answers") or ():
            if is_public(answer) or is_private(answer):
                self._name(answer, query)

    def shutdown(self) -> None:
        if self.lookups is not None:
            self.lookups.put(None)
            self.resolver.join()

    def _mac(self, ip: str, mac: str) -> None:
        mac = mac.lower()
        if self.macs.get(ip) == mac or mac in ("ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"):
            return
        self.macs[ip] = mac
        if self.vendors is None:
            self.vendors = load_oui(self.oui_path) if self.oui_path.is_file() else {}
            if not self.vendors:
                self.ctx.log.warning("no MAC vendors: %s is missing or empty", self.oui_path)
        vendor = self.vendors.get(mac.replace(":", "")[:6], "")
        self.ctx.set_ip_info(ip, mac=mac, mac_vendor=vendor or None)

    def _name(self, ip: str, name: str) -> None:
        names = self.names.setdefault(ip, [])
        if name in names or len(names) >= MAX_NAMES:
            return
        names.append(name)
        self.ctx.set_ip_info(ip, host_names=list(names))

    def _resolve(self) -> None:
        assert self.lookups is not None
        while (ip := self.lookups.get()) is not None:
            if self.ctx.stopping.is_set():
                continue  # drain without asking: slipsd is stopping
            try:
                self.ctx.set_ip_info(ip, reverse_dns=socket.gethostbyaddr(ip)[0])
            except OSError:
                self.ctx.set_ip_info(ip, reverse_dns=None)
