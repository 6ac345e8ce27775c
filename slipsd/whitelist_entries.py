"""One line of the whitelist file (format: docs/whitelist.md) as an ``Entry``.

Lines ``type, value, direction, what``: type ip, network, domain, organization or mac;
direction src, dst or both (default both); what flows, evidence or both (default both).
``parse_line`` checks one line and normalises its value, so that slipsd.whitelist's
matching compares like with like; reading the file, and reporting its bad lines, is
slipsd.whitelist's ``read_whitelist``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from slipsd.netinfo import parse_ip
from slipsd.orgs import Organizations

TYPES = {"ip": "ip", "network": "network", "domain": "domain", "organization": "organization",
         "organisation": "organization", "org": "organization", "mac": "mac"}
DIRECTIONS = {"src": (True, False), "dst": (False, True), "both": (True, True)}
WHATS = {"flows": (True, False), "evidence": (False, True), "both": (True, True)}

# Lowercase MAC, ':' or '-' separated: whitelist values, and evidence the matching reads.
MAC_FORM = re.compile(r"^[0-9a-f]{2}([:-])(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}$")
_DOMAIN = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$")


@dataclass(frozen=True)
class Entry:
    kind: str
    value: str  # normalised: compressed address, network, lowercase domain or MAC, org name
    src: bool
    dst: bool
    flows: bool
    evidence: bool
    line: int


def parse_line(text: str, orgs: Organizations) -> Entry | None:
    """One line of the file (``None`` for blanks and comments); ValueError says what is wrong."""
    text = text.split("#", 1)[0].strip()
    if not text:
        return None
    fields = [f.strip() for f in text.split(",")]
    if not 2 <= len(fields) <= 4:
        raise ValueError(f"expected 'type, value[, direction[, what]]', got {len(fields)} "
                         "comma-separated fields")
    fields += ["both"] * (4 - len(fields))
    kind = TYPES.get(fields[0].lower())
    if kind is None:
        raise ValueError(f"unknown type {fields[0]!r} (expected ip, network, domain, "
                         "organization or mac)")
    direction, what = fields[2].lower(), fields[3].lower()
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be src, dst or both, got {fields[2]!r}")
    if what not in WHATS:
        raise ValueError(f"what must be flows, evidence or both, got {fields[3]!r}")
    value = _normalise(kind, fields[1], orgs)
    src, dst = DIRECTIONS[direction]
    flows, evidence = WHATS[what]
    return Entry(kind, value, src, dst, flows, evidence, 0)


def _normalise(kind: str, raw: str, orgs: Organizations) -> str:
    value = raw.strip().lower()
    if kind == "ip":
        ip = parse_ip(value)
        if ip is None:
            raise ValueError(f"not an IP address: {raw!r}")
        return str(ip)
    if kind == "network":
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"not a network (CIDR): {raw!r}") from None
    if kind == "domain":
        value = value.removeprefix("*.").strip(".")
        if not _DOMAIN.match(value):
            raise ValueError(f"not a domain name: {raw!r}")
        return value
    if kind == "mac":
        if not MAC_FORM.match(value):
            raise ValueError(f"not a MAC address (aa:bb:cc:dd:ee:ff): {raw!r}")
        return value.replace("-", ":")
    if orgs.get(value) is None:
        raise ValueError(f"unknown organization {raw!r} (known: {', '.join(orgs.names())})")
    return value
