"""A pcap writer for tests: ``Capture`` writes packets with dpkt and keeps its own account of
every flow it wrote (packets, payload and IP bytes each way, in Zeek's terms), so what a
reader makes of the capture is checked against what is really in it; ``sample()`` is one
flow of every kind. Its accounting is checked in test_flowmeter.py."""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import Any

import dpkt  # type: ignore[import-untyped]

T0 = 1_700_000_000.0
MAC = {"10.0.0.1": "02:00:00:00:00:01", "router": "02:00:00:00:00:fe"}
_FLAGS = {"S": dpkt.tcp.TH_SYN, "A": dpkt.tcp.TH_ACK, "F": dpkt.tcp.TH_FIN,
          "R": dpkt.tcp.TH_RST, "P": dpkt.tcp.TH_PUSH}


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


class Capture:
    """Packets for a pcap, and the truth about each flow in Zeek's terms."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, bytes]] = []
        self.flows: dict[tuple[Any, ...], dict[str, int]] = {}
        self._seq: dict[tuple[Any, ...], int] = {}

    def _account(self, proto: str, src: str, sport: int, dst: str, dport: int,
                 payload: int, ip_len: int) -> None:
        fwd, back = (proto, src, sport, dst, dport), (proto, dst, dport, src, sport)
        side = "orig"
        if back in self.flows:
            fwd, side = back, "resp"
        stats = self.flows.setdefault(fwd, dict.fromkeys(
            ("orig_pkts", "orig_bytes", "orig_ip_bytes", "resp_pkts", "resp_bytes",
             "resp_ip_bytes"), 0))
        stats[f"{side}_pkts"] += 1
        stats[f"{side}_bytes"] += payload
        stats[f"{side}_ip_bytes"] += ip_len

    def frame(self, ts: float, eth_type: int, data: Any, src_mac: str = "02:00:00:00:00:01",
              dst_mac: str = "02:00:00:00:00:fe") -> None:
        eth = dpkt.ethernet.Ethernet(src=mac_bytes(src_mac), dst=mac_bytes(dst_mac),
                                     type=eth_type, data=data)
        self.packets.append((ts, bytes(eth)))

    def ip(self, ts: float, src: str, dst: str, proto: int, l4: Any) -> int:
        packet = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto,
                            ttl=64, data=l4)
        packet.len = 20 + len(bytes(l4))
        self.frame(ts, dpkt.ethernet.ETH_TYPE_IP, packet)
        return packet.len  # type: ignore[no-any-return]

    def tcp(self, ts: float, src: str, sport: int, dst: str, dport: int, flags: str,
            payload: bytes = b"") -> None:
        key, peer = (src, sport, dst, dport), (dst, dport, src, sport)
        seq = self._seq.setdefault(key, 1000 + sport)
        bits = 0
        for letter in flags:
            bits |= _FLAGS[letter]
        segment = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=self._seq.get(peer, 0),
                               flags=bits, win=65535, data=payload)
        self._seq[key] = seq + len(payload) + ("S" in flags) + ("F" in flags)
        ip_len = self.ip(ts, src, dst, 6, segment)
        self._account("tcp", src, sport, dst, dport, len(payload), ip_len)

    def session(self, ts: float, client: str, cport: int, server: str, sport: int,
                talk: list[tuple[str, bytes]]) -> float:
        """Handshake, ('c'|'s', payload) segments each ACKed, FIN both ways; returns end ts."""
        up, down = (client, cport, server, sport), (server, sport, client, cport)
        steps = [(*up, "S", b""), (*down, "SA", b""), (*up, "A", b"")]
        for who, data in talk:
            there, back = (up, down) if who == "c" else (down, up)
            steps += [(*there, "PA", data), (*back, "A", b"")]
        steps += [(*up, "FA", b""), (*down, "A", b""), (*down, "FA", b""), (*up, "A", b"")]
        for i, (src, p1, dst, p2, flags, data) in enumerate(steps):
            self.tcp(ts + i / 1000, src, p1, dst, p2, flags, data)  # no error piling up
        return ts + len(steps) / 1000

    def udp(self, ts: float, src: str, sport: int, dst: str, dport: int, payload: bytes) -> None:
        datagram = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        datagram.ulen = 8 + len(payload)
        ip_len = self.ip(ts, src, dst, 17, datagram)
        self._account("udp", src, sport, dst, dport, len(payload), ip_len)

    def icmp(self, ts: float, src: str, dst: str, kind: int, data: bytes) -> None:
        echo = dpkt.icmp.ICMP.Echo(id=7, seq=1, data=data)
        ip_len = self.ip(ts, src, dst, 1, dpkt.icmp.ICMP(type=kind, code=0, data=echo))
        self._account("icmp", src, 0, dst, 0, ip_len - 28, ip_len)  # Zeek: bytes after the header

    def arp(self, ts: float, op: int, sender: tuple[str, str], target: tuple[str, str],
            eth_dst: str) -> None:
        packet = dpkt.arp.ARP(op=op, sha=mac_bytes(sender[0]), spa=socket.inet_aton(sender[1]),
                              tha=mac_bytes(target[0]), tpa=socket.inet_aton(target[1]))
        self.frame(ts, dpkt.ethernet.ETH_TYPE_ARP, packet, src_mac=sender[0], dst_mac=eth_dst)

    def write(self, path: Path, fmt: str = "pcap") -> Path:
        with open(path, "wb") as out:
            writer = (dpkt.pcapng.Writer(out) if fmt == "pcapng"
                      else dpkt.pcap.Writer(out, nano=fmt == "nano"))
            for ts, frame in self.packets:
                writer.writepkt(frame, ts)
        return path


def dns_message(trans_id: int, name: str, answers: list[Any] | None = None,
                rcode: int = 0) -> bytes:
    msg = dpkt.dns.DNS(id=trans_id, rd=1, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)])
    if answers is not None:
        msg.qr, msg.ra, msg.rcode, msg.an = dpkt.dns.DNS_R, 1, rcode, answers
    return bytes(msg)


def client_hello(sni: str, pad: int = 0) -> bytes:
    """A TLS 1.2 ClientHello with GREASE values (which JA3 leaves out), padded if asked."""
    def ext(kind: int, body: bytes) -> bytes:
        return struct.pack("!HH", kind, len(body)) + body
    name = sni.encode()
    exts = (ext(0x0A0A, b"") + ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
            + ext(10, struct.pack("!HHHH", 6, 0x1A1A, 29, 23)) + ext(11, b"\x01\x00")
            + ext(16, b"\x00\x03\x02h2") + (ext(21, bytes(pad)) if pad else b""))
    ciphers = struct.pack("!HHHH", 0x2A2A, 4865, 49195, 49199)
    body = (b"\x03\x03" + bytes(32) + b"\x00" + struct.pack("!H", len(ciphers)) + ciphers
            + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def server_hello(version: int) -> bytes:
    exts = struct.pack("!HHH", 43, 2, version) if version == 0x0304 else b""
    body = (b"\x03\x03" + bytes(32) + b"\x00" + struct.pack("!HB", 0x1301, 0)
            + struct.pack("!H", len(exts)) + exts)
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + struct.pack("!H", len(hs)) + hs


def sample() -> Capture:
    """One flow of every kind the brief lists, 0.1 s apart."""
    cap = Capture()
    c = "10.0.0.1"
    cap.session(T0, c, 40000, "10.0.0.2", 8000, [("c", b"ping 1234"), ("s", b"pong 5678!")])
    cap.tcp(T0 + 0.1, c, 40001, "10.0.0.3", 22, "S")
    cap.tcp(T0 + 0.2, c, 40001, "10.0.0.3", 22, "S")  # a retransmitted SYN
    cap.tcp(T0 + 0.3, c, 40002, "10.0.0.4", 23, "S")
    cap.tcp(T0 + 0.301, "10.0.0.4", 23, c, 40002, "RA")
    answers = [dpkt.dns.DNS.RR(name="example.com", type=dpkt.dns.DNS_CNAME, ttl=300,
                               cname="web.example.com"),
               dpkt.dns.DNS.RR(name="web.example.com", type=dpkt.dns.DNS_A, ttl=60,
                               ip=socket.inet_aton("93.184.216.34"))]
    cap.udp(T0 + 0.4, c, 5555, "10.0.0.53", 53, dns_message(7, "Example.COM"))
    cap.udp(T0 + 0.402, "10.0.0.53", 53, c, 5555, dns_message(7, "example.com", answers))
    cap.udp(T0 + 0.41, c, 5555, "10.0.0.53", 53, dns_message(8, "nope.example"))
    cap.udp(T0 + 0.411, "10.0.0.53", 53, c, 5555, dns_message(8, "nope.example", [], rcode=3))
    get = (b"GET /index.html?q=1 HTTP/1.1\r\nHost: www.example.com\r\n"
           b"User-Agent: flowmeter-test/1.0\r\nAccept: */*\r\n\r\n")
    second = b"GET /missing HTTP/1.1\r\nHost: www.example.com\r\n"  # head split in two
    cap.session(T0 + 0.5, c, 40003, "10.0.0.80", 80, [
        ("c", get), ("s", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
        ("c", second), ("c", b"User-Agent: other\r\n\r\n"),
        ("s", b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")])
    hello = client_hello("secure.example.org")
    cap.session(T0 + 0.6, c, 40004, "10.0.0.44", 443, [
        ("c", hello[:100]), ("c", hello[100:]), ("s", server_hello(0x0304)),
        ("c", b"\x14\x03\x03\x00\x01\x01"), ("c", b"\x17\x03\x03\x00\x04data")])
    cap.arp(T0 + 0.7, 1, (MAC["10.0.0.1"], c), ("00:00:00:00:00:00", "10.0.0.9"),
            "ff:ff:ff:ff:ff:ff")
    cap.arp(T0 + 0.701, 2, ("02:00:00:00:00:09", "10.0.0.9"), (MAC["10.0.0.1"], c),
            MAC["10.0.0.1"])
    cap.icmp(T0 + 0.8, c, "10.0.0.9", 8, b"x" * 32)
    cap.icmp(T0 + 0.801, "10.0.0.9", c, 0, b"x" * 32)
    return cap
