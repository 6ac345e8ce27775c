"""The capture bench/flowmeter.py meters (its docstring describes the traffic), with dpkt.

The same arguments give the same bytes: one seeded generator draws everything.
"""

from __future__ import annotations

import os
import random
import socket
import struct
from pathlib import Path

import dpkt

START = 1_704_103_200.0  # 2024-01-01 10:00:00 UTC
RESOLVER = "192.168.10.1"
MSS = 1448
# (kind, weight) of a session; response sizes of web sessions are drawn from SIZES.
KINDS = (("https", 40), ("dns", 30), ("http", 15), ("ntp", 5), ("syn", 4), ("ping", 4),
         ("ssh", 2))
SIZES = ((1_000, 30), (5_000, 30), (20_000, 20), (100_000, 16), (512_000, 4))
AGENTS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0",
          "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
          "curl/7.88.1")


def _mac(ip: str) -> bytes:
    return b"\x02\x00" + socket.inet_aton(ip)


def _tls_record(kind: int, body: bytes) -> bytes:
    return struct.pack("!BHH", kind, 0x0303, len(body)) + body


def client_hello(sni: str) -> bytes:
    """A TLS 1.2-style ClientHello offering TLS 1.3, with SNI, groups and ALPN."""
    def ext(kind: int, body: bytes) -> bytes:
        return struct.pack("!HH", kind, len(body)) + body
    name = sni.encode()
    exts = (ext(0, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name)
            + ext(10, struct.pack("!HHHH", 6, 29, 23, 24)) + ext(11, b"\x01\x00")
            + ext(16, b"\x00\x0c\x02h2\x08http/1.1") + ext(43, b"\x04\x03\x04\x03\x03")
            + ext(13, struct.pack("!HHHH", 6, 0x0403, 0x0804, 0x0401)))
    ciphers = struct.pack("!HHHHHH", 4865, 4866, 4867, 49195, 49199, 49196)
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + struct.pack("!H", len(ciphers))
            + ciphers + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    return _tls_record(22, b"\x01" + len(body).to_bytes(3, "big") + body)


def server_hello() -> bytes:
    exts = struct.pack("!HHH", 43, 2, 0x0304)
    body = (b"\x03\x03" + bytes(range(32, 64)) + b"\x00" + struct.pack("!HB", 0x1301, 0)
            + struct.pack("!H", len(exts)) + exts)
    return _tls_record(22, b"\x02" + len(body).to_bytes(3, "big") + body)


class Capture:
    """Packets written as they are made, each session at its own start time.

    Sessions overlap in time, so packets are buffered and written in time order once
    no session still being made can produce an earlier one."""

    def __init__(self, path: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        self.noise = self.rng.randbytes(1 << 16)  # payload bytes, sliced
        self.handle = open(path, "wb")  # noqa: SIM115 (closed by close())
        self.writer = dpkt.pcap.Writer(self.handle, linktype=dpkt.pcap.DLT_EN10MB)
        self.pending: list[tuple[float, int, bytes]] = []
        self.order = 0
        self.bytes = 24  # written
        self.made = 24  # made, written or still buffered
        self.packets = 0
        self.sessions = 0
        self.port = 20000

    def payload(self, size: int) -> bytes:
        off = self.rng.randrange(0, len(self.noise) - size) if size < len(self.noise) else 0
        return self.noise[off : off + size]

    def next_port(self) -> int:
        self.port = 20000 + (self.port - 19999) % 40000
        return self.port

    def frame(self, ts: float, src: str, dst: str, ip: dpkt.ip.IP) -> None:
        ip.len = len(ip)
        eth = dpkt.ethernet.Ethernet(src=_mac(src), dst=_mac(dst),
                                     type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
        self.order += 1
        frame = bytes(eth)
        self.made += 16 + len(frame)
        self.pending.append((round(ts, 6), self.order, frame))

    def tcp(self, ts: float, src: str, dst: str, sport: int, dport: int, flags: int,
            seq: int, ack: int, data: bytes = b"") -> None:
        seg = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=seq & 0xFFFFFFFF,
                           ack=ack & 0xFFFFFFFF, win=64240, data=data)
        self.frame(ts, src, dst, dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst),
                                            p=dpkt.ip.IP_PROTO_TCP, ttl=64, data=seg))

    def udp(self, ts: float, src: str, dst: str, sport: int, dport: int, data: bytes) -> None:
        dgram = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
        dgram.ulen = len(dgram)
        self.frame(ts, src, dst, dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst),
                                            p=dpkt.ip.IP_PROTO_UDP, ttl=64, data=dgram))

    def icmp(self, ts: float, src: str, dst: str, kind: int, ident: int) -> None:
        echo = dpkt.icmp.ICMP.Echo(id=ident, seq=1, data=self.payload(56))
        self.frame(ts, src, dst, dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst),
                                            p=dpkt.ip.IP_PROTO_ICMP, ttl=64,
                                            data=dpkt.icmp.ICMP(type=kind, code=0, data=echo)))

    def session(self, ts: float, client: str, server: str, dport: int,
                exchanges: list[tuple[bytes, bytes]], rtt: float) -> None:
        """Handshake, (request, reply) exchanges in MSS segments with an ACK every two, FINs."""
        f = dpkt.tcp
        sport, c, s = self.next_port(), self.rng.getrandbits(32), self.rng.getrandbits(32)
        self.tcp(ts, client, server, sport, dport, f.TH_SYN, c, 0)
        self.tcp(ts + rtt, server, client, dport, sport, f.TH_SYN | f.TH_ACK, s, c + 1)
        c, s, t = c + 1, s + 1, ts + rtt
        self.tcp(t + 0.0001, client, server, sport, dport, f.TH_ACK, c, s)
        for request, reply in exchanges:
            t += 0.001
            self.tcp(t, client, server, sport, dport, f.TH_PUSH | f.TH_ACK, c, s, request)
            c += len(request)
            t += rtt
            for k, off in enumerate(range(0, len(reply), MSS)):
                piece = reply[off : off + MSS]
                t += 0.00012
                self.tcp(t, server, client, dport, sport, f.TH_ACK, s, c, piece)
                s += len(piece)
                if k % 2:
                    self.tcp(t + 0.00005, client, server, sport, dport, f.TH_ACK, c, s)
        t += 0.01
        self.tcp(t, client, server, sport, dport, f.TH_FIN | f.TH_ACK, c, s)
        self.tcp(t + rtt, server, client, dport, sport, f.TH_FIN | f.TH_ACK, s, c + 1)
        self.tcp(t + rtt + 0.0001, client, server, sport, dport, f.TH_ACK, c + 1, s + 1)

    def flush(self, before: float) -> None:
        """Write every buffered packet earlier than ``before``."""
        self.pending.sort()
        keep = 0
        for keep, (ts, _, frame) in enumerate(self.pending):  # noqa: B007
            if ts >= before:
                break
            self.writer.writepkt(frame, ts=ts)
            self.bytes += 16 + len(frame)
            self.packets += 1
        else:
            keep = len(self.pending)
        del self.pending[:keep]

    def close(self) -> None:
        self.flush(float("inf"))
        self.handle.close()


def _dns(cap: Capture, ts: float, host: str, name: str, answer: str) -> None:
    ident, sport = cap.rng.randrange(1, 65536), cap.next_port()
    query = dpkt.dns.DNS(id=ident, rd=1, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)])
    cap.udp(ts, host, RESOLVER, sport, 53, bytes(query))
    query.qr, query.ra, query.rcode = dpkt.dns.DNS_R, 1, dpkt.dns.DNS_RCODE_NOERR
    query.an = [dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_A, cls=dpkt.dns.DNS_IN, ttl=300,
                                rdata=socket.inet_aton(answer))]
    cap.udp(ts + 0.004, RESOLVER, host, 53, sport, bytes(query))


def _size(rng: random.Random) -> int:
    size = rng.choices([s for s, _ in SIZES], weights=[w for _, w in SIZES])[0]
    return int(size * rng.uniform(0.5, 1.5))


def make_pcap(path: Path, megabytes: int, seed: int = 1) -> dict[str, int]:
    """Write a capture of about ``megabytes`` MB; the same arguments give the same bytes."""
    tmp = path.with_suffix(".part")
    cap = Capture(tmp, seed)
    rng = cap.rng
    hosts = [f"192.168.10.{10 + i}" for i in range(60)]
    servers = [f"{(23, 34, 52, 104, 151)[i % 5]}.{(i * 37) % 250 + 1}.{(i * 101) % 250 + 1}."
               f"{i % 200 + 20}" for i in range(2000)]
    names = [f"www{i}.site{i % 313}.example.com" for i in range(2000)]
    kinds, weights = [k for k, _ in KINDS], [w for _, w in KINDS]
    ts, target = START, megabytes * 1_000_000
    while cap.made < target:
        ts += rng.expovariate(20.0)  # 20 sessions a second
        cap.sessions += 1
        host = hosts[min(int(rng.paretovariate(1.2)) - 1, len(hosts) - 1)]
        i = min(int(rng.paretovariate(0.9)) - 1, len(servers) - 1)
        rtt = rng.uniform(0.005, 0.08)
        kind = rng.choices(kinds, weights=weights)[0]
        if kind == "dns":
            _dns(cap, ts, host, names[i], servers[i])
        elif kind == "https":
            request = _tls_record(23, cap.payload(rng.randint(200, 900)))
            body = b"".join(_tls_record(23, cap.payload(min(16384, n)))
                            for n in _chunks(_size(rng)))
            cap.session(ts, host, servers[i], 443,
                        [(client_hello(names[i]), server_hello() + _tls_record(
                            22, cap.payload(rng.randint(2500, 4500)))),
                         (request, body)], rtt)
        elif kind == "http":
            size = _size(rng)
            get = (f"GET /static/{rng.randrange(10**6)}.js HTTP/1.1\r\nHost: {names[i]}\r\n"
                   f"User-Agent: {rng.choice(AGENTS)}\r\nAccept: */*\r\n\r\n").encode()
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/javascript\r\n"
                    f"Content-Length: {size}\r\n\r\n").encode()
            cap.session(ts, host, servers[i], 80, [(get, head + cap.payload(size))], rtt)
        elif kind == "ssh":
            exchanges = [(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", b"SSH-2.0-OpenSSH_8.9p1\r\n")]
            exchanges += [(cap.payload(rng.randint(40, 600)), cap.payload(rng.randint(40, 3000)))
                          for _ in range(rng.randint(5, 40))]
            cap.session(ts, host, servers[i], 22, exchanges, rtt)
        elif kind == "ntp":
            sport = cap.next_port()
            cap.udp(ts, host, servers[i], sport, 123, b"\x23" + cap.payload(47))
            cap.udp(ts + rtt, servers[i], host, 123, sport, b"\x24" + cap.payload(47))
        elif kind == "ping":
            ident = rng.randrange(65536)
            cap.icmp(ts, host, servers[i], 8, ident)
            cap.icmp(ts + rtt, servers[i], host, 0, ident)
        else:  # a SYN nobody answers, and its retransmission
            sport, seq = cap.next_port(), rng.getrandbits(32)
            port = rng.choice((22, 23, 445, 3389, 8080))
            cap.tcp(ts, host, servers[i], sport, port, dpkt.tcp.TH_SYN, seq, 0)
            cap.tcp(ts + 1.0, host, servers[i], sport, port, dpkt.tcp.TH_SYN, seq, 0)
        if len(cap.pending) > 50_000:
            cap.flush(ts)  # sessions starting later never send before their start
    cap.close()
    os.replace(tmp, path)
    return {"bytes": cap.bytes, "packets": cap.packets, "sessions": cap.sessions}


def _chunks(total: int) -> list[int]:
    return [min(16384, total - off) for off in range(0, total, 16384)]

