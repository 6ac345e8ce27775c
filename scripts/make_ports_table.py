"""Write etc/ports.csv, the table of well-known services UNKNOWN_PORT checks against.

Source: the system's /etc/services (Debian's netbase: IANA's registered names
that are in common use), plus ports that real networks use every day but that
file leaves out. Run it again to refresh the table; the output is sorted and
stable.

    python scripts/make_ports_table.py [/etc/services] [etc/ports.csv]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

EXTRA = [  # port, proto, name
    (443, "udp", "quic"), (1900, "udp", "ssdp"), (3389, "tcp", "rdp"), (3389, "udp", "rdp"),
    (3478, "udp", "stun"), (3478, "tcp", "stun"), (5060, "udp", "sip"), (5060, "tcp", "sip"),
    (5061, "tcp", "sips"), (5222, "tcp", "xmpp-client"), (5228, "tcp", "google-play"),
    (5353, "udp", "mdns"), (5355, "udp", "llmnr"), (5355, "tcp", "llmnr"),
    (8000, "tcp", "http-alt"), (8008, "tcp", "http-alt"), (8080, "tcp", "http-alt"),
    (8443, "tcp", "https-alt"), (8883, "tcp", "secure-mqtt"), (1883, "tcp", "mqtt"),
    (3702, "udp", "ws-discovery"), (5985, "tcp", "wsman"), (5986, "tcp", "wsmans"),
    (9100, "tcp", "jetdirect"), (27017, "tcp", "mongodb"), (6443, "tcp", "kubernetes-api"),
    (1194, "udp", "openvpn"), (51820, "udp", "wireguard"), (4500, "udp", "ipsec-nat-t"),
    (500, "udp", "isakmp"), (123, "udp", "ntp"), (137, "udp", "netbios-ns"),
    (138, "udp", "netbios-dgm"), (139, "tcp", "netbios-ssn"), (445, "tcp", "microsoft-ds"),
    (67, "udp", "bootps"), (68, "udp", "bootpc"), (546, "udp", "dhcpv6-client"),
    (547, "udp", "dhcpv6-server"), (853, "tcp", "domain-s"), (5223, "tcp", "apple-push"),
]


def read_services(path: Path) -> set[tuple[int, str, str]]:
    rows = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        port, _, proto = parts[1].partition("/")
        if proto in ("tcp", "udp"):
            rows.add((int(port), proto, parts[0]))
    return rows


def main() -> None:
    source = Path(sys.argv[1] if len(sys.argv) > 1 else "/etc/services")
    target = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).parents[1] / "etc/ports.csv")
    rows = read_services(source) | set(EXTRA)
    first: dict[tuple[int, str], str] = {}
    for port, proto, name in sorted(rows):
        first.setdefault((port, proto), name)
    with open(target, "w", newline="") as out:
        out.write("# port,proto,name: well-known services (scripts/make_ports_table.py)\n")
        writer = csv.writer(out, lineterminator="\n")
        for (port, proto), name in sorted(first.items()):
            writer.writerow([port, proto, name])


if __name__ == "__main__":
    main()
