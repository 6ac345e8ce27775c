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
# A LAN segment as (IP version, its first address as an integer): hashing a tuple of
# two ints costs a fraction of hashing an ipaddress network, on every flow.
Segment = tuple[int, int]


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


@functools.lru_cache(maxsize=65536)
def is_private(text: str) -> bool:
    """RFC 1918, ULA and link-local space: addresses that never route on the internet."""
    ip = parse_ip(text)
    if ip is None or ip.is_loopback or ip.is_unspecified or ip.is_multicast:
        return False
    return ip.is_private and text != "255.255.255.255" and not _is_documentation(ip)


@functools.lru_cache(maxsize=65536)
def is_public(text: str) -> bool:
    """A unicast internet address: the complement of is_private among real hosts.

    Documentation ranges count as public: they stand for internet hosts in
    generated and test traffic, and no real network routes them.
    """
    ip = parse_ip(text)
    if ip is None or ip.is_multicast or ip.is_loopback or ip.is_unspecified or ip.is_link_local:
        return False
    return text != "255.255.255.255" and (ip.is_global or _is_documentation(ip))


@functools.lru_cache(maxsize=65536)
def is_group(text: str) -> bool:
    """Multicast and the limited broadcast address: traffic to many hosts by nature."""
    ip = parse_ip(text)
    return ip is not None and (ip.is_multicast or text == "255.255.255.255")


def _is_documentation(ip: Address) -> bool:
    # Python calls documentation ranges private; for detection they behave like
    # public addresses (see is_public).
    return any(ip in net for net in _DOCUMENTATION if net.version == ip.version)


_DOCUMENTATION: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n) for n in
    ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)


class LocalNetworks:
    """The networks of the monitored hosts.

    Configured (``[profiles] home_networks``) when given; otherwise learnt from
    traffic: every private address seen as a source adds its /24 (IPv4) or /64
    (IPv6), the usual size of a LAN segment. Learnt networks are kept as a set
    of prefixes, so a lookup costs the same however many there are, and their
    number is capped so spoofed sources cannot grow it without bound.
    """

    MAX_LEARNT = 4096
    MAX_SOURCES = 65_536

    def __init__(self, configured: Iterable[str] = ()) -> None:
        self.configured = [ipaddress.ip_network(n, strict=False) for n in configured]
        self.learnt: set[Segment] = set()
        # Sources learn() has had: learning one again changes nothing, so callers on a
        # per-flow path test this set first and spare the call. Cleared when full
        # (spoofed sources): that only costs the call again.
        self.sources: set[str] = set()

    @property
    def guessing(self) -> bool:
        return not self.configured

    def learn(self, source_ip: str) -> None:
        sources = self.sources
        if len(sources) >= self.MAX_SOURCES:
            sources.clear()
        sources.add(source_ip)
        if self.configured or len(self.learnt) >= self.MAX_LEARNT:
            return
        segment = _private_segment(source_ip)
        if segment is not None:
            self.learnt.add(segment)

    def contains(self, text: str) -> bool:
        if self.configured:
            ip = parse_ip(text)
            return ip is not None and any(
                ip in net for net in self.configured if net.version == ip.version)
        return _segment(text) in self.learnt


@functools.lru_cache(maxsize=65536)
def _segment(text: str) -> Segment | None:
    """The /24 (IPv4) or /64 (IPv6) around an address: the usual LAN segment."""
    ip = parse_ip(text)
    if ip is None:
        return None
    host_bits = 8 if ip.version == 4 else 64
    return ip.version, int(ip) >> host_bits << host_bits


@functools.lru_cache(maxsize=16384)  # sources: the monitored hosts
def _private_segment(text: str) -> Segment | None:
    """The segment of a private address, None for any other."""
    return _segment(text) if is_private(text) else None


@functools.lru_cache(maxsize=4)
def load_ports(path: str = "") -> dict[tuple[int, str], str]:
    """(port, proto) -> service name, from a CSV of ``port,proto,name`` lines."""
    table: dict[tuple[int, str], str] = {}
    with open(path or shipped_data("ports.csv"), newline="", encoding="utf-8") as handle:
        for row in csv.reader(line for line in handle if not line.startswith("#")):
            if len(row) >= 3:
                table[(int(row[0]), row[1].strip().lower())] = row[2].strip()
    return table
