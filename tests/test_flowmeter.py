"""The flowmeter sensor on captures these tests write with dpkt, flow by flow.

``Capture`` (tests/pcap_capture.py) writes packets and keeps its own account of every
flow it wrote (packets, payload and IP bytes each way), so conn.log is checked against
what is really in the capture, not against the flowmeter's own arithmetic.
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

from pcap_capture import MAC, T0, Capture, client_hello, mac_bytes, sample, server_hello

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
