"""The flowmeter sensor on captures these tests write with dpkt, flow by flow.

``Capture`` writes packets and keeps its own account of every flow it wrote
(packets, payload and IP bytes each way), so conn.log is checked against what
is really in the capture, not against the flowmeter's own arithmetic.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
from pathlib import Path
from typing import Any

import dpkt  # type: ignore[import-untyped]
import pytest

from slipsd.sensors import flowmeter
from slipsd.sensors._flowmeter_conn import tcp_state
from slipsd.sensors._flowmeter_fast import supported as fast_meters_supported
from slipsd.sensors.flowmeter import write_zeek_logs

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


EXPECTED = {  # (proto, orig, orig_p, resp, resp_p) -> (state, history, service)
    ("tcp", "10.0.0.1", 40000, "10.0.0.2", 8000): ("SF", "ShADadFf", ""),
    ("tcp", "10.0.0.1", 40001, "10.0.0.3", 22): ("S0", "S", ""),
    ("tcp", "10.0.0.1", 40002, "10.0.0.4", 23): ("REJ", "Sr", ""),
    ("udp", "10.0.0.1", 5555, "10.0.0.53", 53): ("SF", "Dd", "dns"),
    ("tcp", "10.0.0.1", 40003, "10.0.0.80", 80): ("SF", "ShADadFf", "http"),
    ("tcp", "10.0.0.1", 40004, "10.0.0.44", 443): ("SF", "ShADadFf", "ssl"),
    ("icmp", "10.0.0.1", 0, "10.0.0.9", 0): ("OTH", "", ""),
}


def read_log(folder: Path, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / f"{name}.log").read_text().splitlines()]


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Capture, Path]:
    root = tmp_path_factory.mktemp("flowmeter")
    cap = sample()
    write_zeek_logs(str(cap.write(root / "sample.pcap")), root / "logs")
    return cap, root / "logs"


def test_conn_log_is_exactly_the_flows_written(metered: tuple[Capture, Path]) -> None:
    cap, logs = metered
    conn = read_log(logs, "conn")
    assert len(conn) == len(cap.flows) == len(EXPECTED)
    for rec in conn:
        key = (rec["proto"], rec["id.orig_h"], rec["id.orig_p"], rec["id.resp_h"],
               rec["id.resp_p"])
        truth_key = key if key[0] != "icmp" else ("icmp", key[1], 0, key[3], 0)
        assert {k: rec[k] for k in cap.flows[truth_key]} == cap.flows[truth_key], key
        state, history, service = EXPECTED[truth_key]
        assert (rec["conn_state"], rec["history"], rec.get("service", "")) == (
            state, history, service), key
    icmp = next(r for r in conn if r["proto"] == "icmp")
    assert (icmp["id.orig_p"], icmp["id.resp_p"]) == (8, 0)  # echo request, its reply type
    assert [r["ts"] for r in conn] == sorted(r["ts"] for r in conn)
    assert len({r["uid"] for r in conn}) == len(conn)
    first = conn[0]
    assert first["ts"] == T0 and first["duration"] == pytest.approx(0.010)
    assert first["orig_l2_addr"] == "02:00:00:00:00:01"


def test_application_logs(metered: tuple[Capture, Path]) -> None:
    _, logs = metered
    uid = {(r["id.resp_h"], r["id.resp_p"]): r["uid"] for r in read_log(logs, "conn")}
    dns = read_log(logs, "dns")
    assert [(d["query"], d["qtype_name"], d["rcode_name"], d["answers"], d["TTLs"])
            for d in dns] == [("example.com", "A", "NOERROR", ["web.example.com", "93.184.216.34"],
                               [300.0, 60.0]),
                              ("nope.example", "A", "NXDOMAIN", [], [])]
    assert dns[0]["rtt"] == pytest.approx(0.002) and dns[0]["uid"] == uid[("10.0.0.53", 53)]
    http = read_log(logs, "http")
    assert [(h["method"], h["host"], h["uri"], h["user_agent"], h["status_code"],
             h["trans_depth"]) for h in http] == [
        ("GET", "www.example.com", "/index.html?q=1", "flowmeter-test/1.0", 200, 1),
        ("GET", "www.example.com", "/missing", "other", 404, 2)]
    assert {h["uid"] for h in http} == {uid[("10.0.0.80", 80)]}
    (ssl,) = read_log(logs, "ssl")
    ja3 = "771,4865-49195-49199,0-10-11-16,29-23,0"
    assert ssl["server_name"] == "secure.example.org" and ssl["version"] == "TLSv13"
    assert ssl["ja3"] == hashlib.md5(ja3.encode()).hexdigest() and ssl["established"] is True
    assert ssl["uid"] == uid[("10.0.0.44", 443)] and ssl["id.orig_p"] == 40004
    arp = read_log(logs, "arp")
    assert [{k: v for k, v in a.items() if k not in ("ts", "uid")} for a in arp] == [
        {"operation": "request", "src_mac": MAC["10.0.0.1"], "dst_mac": "ff:ff:ff:ff:ff:ff",
         "orig_h": "10.0.0.1", "resp_h": "10.0.0.9", "orig_hw": MAC["10.0.0.1"],
         "resp_hw": "00:00:00:00:00:00"},
        {"operation": "reply", "src_mac": "02:00:00:00:00:09", "dst_mac": MAC["10.0.0.1"],
         "orig_h": "10.0.0.9", "resp_h": "10.0.0.1", "orig_hw": "02:00:00:00:00:09",
         "resp_hw": MAC["10.0.0.1"]}]
    assert arp[0]["ts"] == T0 + 0.7


def test_dhcp_exchange_spans_flows(tmp_path: Path) -> None:
    cap = Capture()
    mac = mac_bytes("02:00:00:00:00:33") + bytes(10)

    def dhcp(ts: float, src: str, dst: str, op: int, kind: int, **fields: Any) -> None:
        opts = [(53, bytes([kind])), *fields.pop("opts", [])]
        msg = dpkt.dhcp.DHCP(op=op, xid=0xCAFE, chaddr=mac, opts=opts, **fields)
        sport, dport = (68, 67) if op == 1 else (67, 68)
        cap.udp(ts, src, sport, dst, dport, bytes(msg))

    ip = int.from_bytes(socket.inet_aton("10.0.0.77"), "big")
    server = [(54, socket.inet_aton("10.0.0.254")), (51, struct.pack("!I", 3600))]
    dhcp(T0, "0.0.0.0", "255.255.255.255", 1, 1, opts=[(12, b"laptop")])
    dhcp(T0 + 0.01, "10.0.0.254", "255.255.255.255", 2, 2, yiaddr=ip, opts=server)
    dhcp(T0 + 0.02, "0.0.0.0", "255.255.255.255", 1, 3,
         opts=[(50, socket.inet_aton("10.0.0.77")), (12, b"laptop")])
    dhcp(T0 + 0.03, "10.0.0.254", "255.255.255.255", 2, 5, yiaddr=ip, opts=server)
    write_zeek_logs(str(cap.write(tmp_path / "dhcp.pcap")), tmp_path / "logs")
    (rec,) = read_log(tmp_path / "logs", "dhcp")
    conn_uids = [r["uid"] for r in read_log(tmp_path / "logs", "conn")]
    assert sorted(rec.pop("uids")) == sorted(conn_uids) and len(conn_uids) == 2
    assert rec == {"ts": T0, "server_addr": "10.0.0.254", "mac": "02:00:00:00:00:33",
                   "host_name": "laptop", "requested_addr": "10.0.0.77",
                   "assigned_addr": "10.0.0.77", "lease_time": 3600.0,
                   "msg_types": ["DISCOVER", "OFFER", "REQUEST", "ACK"],
                   "duration": pytest.approx(0.03)}


def test_same_capture_same_bytes_from_path_or_descriptor(tmp_path: Path) -> None:
    pcap = sample().write(tmp_path / "s.pcap")
    write_zeek_logs(str(pcap), tmp_path / "a")
    fd = os.open(pcap, os.O_RDONLY)
    try:
        write_zeek_logs(fd, tmp_path / "b")
        os.fstat(fd)  # still the caller's
    finally:
        os.close(fd)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["arp.log", "conn.log", "dns.log", "http.log", "ssl.log"]
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_fast_meters_write_what_nfstreams_plugin_path_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert fast_meters_supported()  # else the flowmeter runs the plugin path only, slower
    cap = sample()
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 4000\r\n\r\n" + b"x" * 1400
    cap.session(T0 + 1, "10.0.0.1", 40010, "10.0.0.80", 80, [  # a body, then pipelined heads
        ("c", b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"), ("s", body), ("s", b"y" * 1400),
        ("s", b"HTTP/1.1 200 OK in a body" + b"z" * 100), ("c", b"GET /b HTTP/1.1\r\n"),
        ("c", b"Host: h\r\n\r\n"), ("s", b"HTTP/1.1 304 Not Modified\r\n\r\n")])
    cap.tcp(T0 + 2, "10.0.0.1", 40011, "10.0.0.5", 9, "S")
    cap.tcp(T0 + 2.001, "10.0.0.5", 9, "10.0.0.1", 40011, "SA")
    cap.tcp(T0 + 2.002, "10.0.0.1", 40011, "10.0.0.5", 9, "R")
    # TLS after the ClientHello: more handshake records, then data, read from their first byte
    # on the fast path; the client data ends the first, but comes too late in the second.
    cert = b"\x16\x03\x03\x05\x00" + b"c" * 1200
    cap.session(T0 + 3, "10.0.0.1", 40012, "10.0.0.44", 443, [
        ("c", client_hello("a.example.org")), ("s", server_hello(0x0303)), ("s", cert),
        ("s", b"c" * 1200), ("c", b"\x17\x03\x03\x00\x04data")])
    cap.session(T0 + 4, "10.0.0.1", 40013, "10.0.0.44", 443, [
        ("c", client_hello("b.example.org")), ("s", server_hello(0x0304))]
        + [("s", cert)] * 10 + [("c", b"\x17\x03\x03\x00\x04data")])  # one past TLS_PACKETS
    pcap = cap.write(tmp_path / "s.pcap")
    write_zeek_logs(str(pcap), tmp_path / "fast")
    monkeypatch.setattr(flowmeter, "FAST_METERS", False)
    write_zeek_logs(str(pcap), tmp_path / "plain")
    names = sorted(p.name for p in (tmp_path / "fast").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "plain").iterdir())
    for name in names:
        assert (tmp_path / "fast" / name).read_bytes() == (tmp_path / "plain" / name).read_bytes()
    http = read_log(tmp_path / "fast", "http")
    assert [(h["uri"], h.get("status_code")) for h in http][-2:] == [("/a", 200), ("/b", 304)]
    ssl = {s["server_name"]: s for s in read_log(tmp_path / "fast", "ssl")}
    assert (ssl["a.example.org"]["version"], ssl["a.example.org"]["established"]) == (
        "TLSv12", True)
    assert (ssl["b.example.org"]["version"], ssl["b.example.org"]["established"]) == (
        "TLSv13", False)


def test_a_capture_begun_mid_handshake_is_logged_from_the_client(tmp_path: Path) -> None:
    cap = Capture()
    cap.tcp(T0, "10.0.0.2", 8000, "10.0.0.1", 40005, "SA")
    cap.tcp(T0 + 0.001, "10.0.0.1", 40005, "10.0.0.2", 8000, "A")
    cap.tcp(T0 + 0.002, "10.0.0.1", 40005, "10.0.0.2", 8000, "PA", b"data")
    write_zeek_logs(str(cap.write(tmp_path / "mid.pcap")), tmp_path / "logs")
    (rec,) = read_log(tmp_path / "logs", "conn")
    assert (rec["id.orig_h"], rec["id.orig_p"], rec["history"], rec["conn_state"]) == (
        "10.0.0.1", 40005, "^hAD", "OTH")
    assert (rec["orig_pkts"], rec["orig_bytes"], rec["resp_pkts"]) == (2, 4, 1)


@pytest.mark.parametrize(("history", "state"), [
    ("S", "S0"), ("Sr", "REJ"), ("SR", "RSTOS0"), ("SF", "SH"), ("ShA", "S1"),
    ("ShADadFf", "SF"), ("ShADF", "S2"), ("ShADf", "S3"), ("ShADR", "RSTO"), ("ShADr", "RSTR"),
    ("ShADFfR", "RSTO"), ("^hr", "RSTRH"), ("^hf", "SHR"), ("Dd", "OTH"), ("", "OTH"),
])
def test_tcp_states_follow_zeek(history: str, state: str) -> None:
    assert tcp_state(history, 1, 1 if any(c.islower() for c in history) else 0) == state
