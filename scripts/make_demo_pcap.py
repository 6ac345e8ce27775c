"""Write the bundled demo capture: a small made-up network with four stories in it.

    python3 scripts/make_demo_pcap.py [OUTPUT]     (default: samples/demo.pcap)

Hosts live in 192.168.56.0/24 behind the router 192.168.56.1, servers in the
documentation ranges. Besides ordinary DNS and web traffic:

* 192.168.56.103 sweeps 120 hosts of 10.0.5.0/24 for telnet (23/tcp): a
  horizontal port scan (some hosts refuse with RST, most stay silent);
* 192.168.56.104 ARPs for 60 neighbours within a few seconds: an ARP scan;
* 192.168.56.101 keeps one TCP session to 203.0.113.50:443 open for 28 minutes
  (keepalives every minute): a long connection;
* 192.168.56.102 fetches http://update-check.example.net/ping every 60 seconds
  after looking the name up: periodic beacons and DNS lookups of one domain.

The bytes are the same on every run: fixed seed, fixed times.
"""

from __future__ import annotations

import random
import socket
import sys
from pathlib import Path

import dpkt

START = 1_704_103_200.0  # 2024-01-01 10:00:00 UTC
ROUTER = "192.168.56.1"
BEACON_NAME = "update-check.example.net"
BEACON_SERVER = "198.51.100.23"


def _mac(ip: str) -> bytes:
    return b"\x02\x00" + socket.inet_aton(ip)


def _ip(text: str) -> bytes:
    return socket.inet_aton(text)


class Capture:
    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.packets: list[tuple[float, bytes]] = []
        self.ports = 40000

    def frame(self, ts: float, src: str, dst: str, ip: dpkt.ip.IP) -> None:
        eth = dpkt.ethernet.Ethernet(src=_mac(src), dst=_mac(dst), type=dpkt.ethernet.ETH_TYPE_IP,
                                     data=ip)
        self.packets.append((ts, bytes(eth)))

    def tcp(self, ts: float, src: str, dst: str, sport: int, dport: int, flags: int,
            seq: int = 0, ack: int = 0, data: bytes = b"") -> None:
        segment = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack,
                               win=64240, data=data)
        ip = dpkt.ip.IP(src=_ip(src), dst=_ip(dst), p=dpkt.ip.IP_PROTO_TCP, ttl=64, data=segment)
        ip.len = len(ip)
        self.frame(ts, src, dst, ip)

    def udp(self, ts: float, src: str, dst: str, sport: int, dport: int, data: bytes) -> None:
        datagram = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
        datagram.ulen = len(datagram)
        ip = dpkt.ip.IP(src=_ip(src), dst=_ip(dst), p=dpkt.ip.IP_PROTO_UDP, ttl=64, data=datagram)
        ip.len = len(ip)
        self.frame(ts, src, dst, ip)

    def port(self) -> int:
        self.ports += 1
        return self.ports

    def session(self, ts: float, client: str, server: str, dport: int,
                exchanges: list[tuple[float, bytes, bytes]]) -> None:
        """A whole TCP session: handshake, (delay, request, reply) exchanges, FIN both ways."""
        sport, c, s = self.port(), 1000, 5000
        f = dpkt.tcp
        self.tcp(ts, client, server, sport, dport, f.TH_SYN, c)
        self.tcp(ts + 0.01, server, client, dport, sport, f.TH_SYN | f.TH_ACK, s, c + 1)
        self.tcp(ts + 0.02, client, server, sport, dport, f.TH_ACK, c + 1, s + 1)
        c, s, t = c + 1, s + 1, ts + 0.02
        for delay, request, reply in exchanges:
            t += delay
            self.tcp(t, client, server, sport, dport, f.TH_PUSH | f.TH_ACK, c, s, request)
            c += len(request)
            self.tcp(t + 0.02, server, client, dport, sport, f.TH_PUSH | f.TH_ACK, s, c, reply)
            s += len(reply)
        self.tcp(t + 0.05, client, server, sport, dport, f.TH_FIN | f.TH_ACK, c, s)
        self.tcp(t + 0.06, server, client, dport, sport, f.TH_FIN | f.TH_ACK, s, c + 1)
        self.tcp(t + 0.07, client, server, sport, dport, f.TH_ACK, c + 1, s + 1)

    def dns(self, ts: float, client: str, name: str, answer: str) -> None:
        ident, sport = self.rng.randint(1, 65535), self.port()
        query = dpkt.dns.DNS(id=ident, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)])
        self.udp(ts, client, ROUTER, sport, 53, bytes(query))
        reply = dpkt.dns.DNS(id=ident, op=dpkt.dns.DNS_RA, rcode=dpkt.dns.DNS_RCODE_NOERR,
                             qd=query.qd)
        reply.qr = dpkt.dns.DNS_R
        reply.an = [dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_A, cls=dpkt.dns.DNS_IN,
                                    ttl=300, rdata=_ip(answer))]
        self.udp(ts + 0.01, ROUTER, client, 53, sport, bytes(reply))

    def arp(self, ts: float, sender: str, target: str) -> None:
        request = dpkt.arp.ARP(op=dpkt.arp.ARP_OP_REQUEST, sha=_mac(sender), spa=_ip(sender),
                               tha=b"\x00" * 6, tpa=_ip(target))
        eth = dpkt.ethernet.Ethernet(src=_mac(sender), dst=b"\xff" * 6,
                                     type=dpkt.ethernet.ETH_TYPE_ARP, data=request)
        self.packets.append((ts, bytes(eth)))

    def write(self, path: Path) -> None:
        self.packets.sort(key=lambda p: p[0])
        with open(path, "wb") as out:
            writer = dpkt.pcap.Writer(out, linktype=dpkt.pcap.DLT_EN10MB)
            for ts, data in self.packets:
                writer.writepkt(data, ts=ts)


def http_get(host: str, path: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Mozilla/5.0\r\n"
            "Accept: */*\r\n\r\n").encode()


def http_ok(body: bytes) -> bytes:
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def build() -> Capture:
    cap = Capture()
    sites = [("www.example.com", "203.0.113.10"), ("news.example.org", "198.51.100.80")]
    for i in range(12):  # ordinary browsing
        name, server = sites[i % 2]
        client = f"192.168.56.10{1 + i % 5}"
        ts = START + 30 + i * 140
        cap.dns(ts, client, name, server)
        cap.session(ts + 0.1, client, server, 80, [(0.05, http_get(name, "/"),
                                                    http_ok(b"x" * 1500))])
    for i in range(120):  # the telnet sweep
        target, ts = f"10.0.5.{i + 1}", START + 300 + i * 0.5
        sport = cap.port()
        cap.tcp(ts, "192.168.56.103", target, sport, 23, dpkt.tcp.TH_SYN, 7000)
        if i % 4 == 0:
            cap.tcp(ts + 0.01, target, "192.168.56.103", 23, sport,
                    dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK, 0, 7001)
    for i in range(60):  # the ARP scan
        cap.arp(START + 600 + i * 0.2, "192.168.56.104", f"192.168.56.{150 + i}")
    keepalives = [(60.0, b"k" * 40, b"K" * 40) for _ in range(28)]  # the long session
    cap.session(START + 120, "192.168.56.101", "203.0.113.50", 443, keepalives)
    for i in range(20):  # the beacons
        ts = START + 900 + i * 60 + cap.rng.uniform(-0.5, 0.5)
        cap.dns(ts, "192.168.56.102", BEACON_NAME, BEACON_SERVER)
        cap.session(ts + 0.1, "192.168.56.102", BEACON_SERVER, 80,
                    [(0.05, http_get(BEACON_NAME, "/ping"), http_ok(b"ok"))])
    return cap


def main(argv: list[str]) -> int:
    default = Path(__file__).resolve().parents[1] / "samples" / "demo.pcap"
    target = Path(argv[1]) if len(argv) > 1 else default
    cap = build()
    cap.write(target)
    size = target.stat().st_size
    print(f"wrote {target} ({len(cap.packets)} packets, {size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

