"""Network facts detection modules share: local networks, address kinds, service names.

Kept free of Redis and processes so that modules stay plain code.
"""

from __future__ import annotations

import csv
import functools
import ipaddress
from collections.abc import Iterable
from pathlib import Path

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def shipped_data(name: str) -> Path:
    """A data file shipped with slips: the checkout's etc/, else the installed copy."""
    checkout = Path(__file__).resolve().parents[1] / "etc" / name
    return checkout if checkout.exists() else Path("/usr/share/slips") / name


@functools.lru_cache(maxsize=65536)
def parse_ip(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_private(text: str) -> bool:
    """RFC 1918, ULA and link-local space: addresses that never route on the internet."""
    ip = parse_ip(text)
    return ip is not None and ip.is_private and not ip.is_loopback and not ip.is_unspecified \
        and not _is_special_public(ip)


def is_public(text: str) -> bool:
    ip = parse_ip(text)
    return ip is not None and ip.is_global


def is_group(text: str) -> bool:
    """Multicast and the limited broadcast address: traffic to many hosts by nature."""
    ip = parse_ip(text)
    return ip is not None and (ip.is_multicast or text == "255.255.255.255")


def _is_special_public(ip: Address) -> bool:
    # Documentation ranges count as "private" for Python; for detection they
    # behave like public addresses (they appear in generated and test traffic).
    return any(ip in net for net in _DOCUMENTATION if net.version == ip.version)


_DOCUMENTATION: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n) for n in
    ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


class LocalNetworks:
    """The networks of the monitored hosts.

    Configured (``[profiles] home_networks``) when given; otherwise learnt from
    traffic: every private address seen as a source adds its /24 (IPv4) or /64
    (IPv6), the usual size of a LAN segment.
    """

    def __init__(self, configured: Iterable[str] = ()) -> None:
        self.configured = [ipaddress.ip_network(n, strict=False) for n in configured]
        self.learnt: set[Network] = set()

    @property
    def guessing(self) -> bool:
        return not self.configured

    def learn(self, source_ip: str) -> None:
        if not self.guessing or not is_private(source_ip):
            return
        ip = parse_ip(source_ip)
        assert ip is not None
        prefix = 24 if ip.version == 4 else 64
        self.learnt.add(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))

    def contains(self, text: str) -> bool:
        ip = parse_ip(text)
        if ip is None:
            return False
        nets = self.configured or self.learnt
        return any(ip in net for net in nets if net.version == ip.version)


@functools.lru_cache(maxsize=4)
def load_ports(path: str = "") -> dict[tuple[int, str], str]:
    """(port, proto) -> service name, from a CSV of ``port,proto,name`` lines."""
    table: dict[tuple[int, str], str] = {}
    with open(path or shipped_data("ports.csv"), newline="", encoding="utf-8") as handle:
        for row in csv.reader(line for line in handle if not line.startswith("#")):
            if len(row) >= 3:
                table[(int(row[0]), row[1].strip().lower())] = row[2].strip()
    return table
