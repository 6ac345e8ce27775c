"""nfdump input: nfcapd files made here from generated captures by nfpcapd, read by nfdump
(the parsing of the lines nfdump prints is in test_input_nfdump_lines.py)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import dpkt
import pytest

from slipsd.events import NEW_FLOW, Flow
from slipsd.inputs import FileStats, InputError, LineError, open_fd, open_path
from slipsd.inputs import nfdump as nf

Event = dict[str, Any]
Packet = tuple[float, bytes]
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
SYN, ACK, FIN = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN
RST, PSH = dpkt.tcp.TH_RST, dpkt.tcp.TH_PUSH
C = "10.0.0.1"  # the client of every generated connection

needs_nfdump = pytest.mark.skipif(
    shutil.which("nfdump") is None or shutil.which("nfpcapd") is None,
    reason="nfdump/nfpcapd are not installed (make installs the Debian package nfdump)",
)


def ip_packet(src: str, dst: str, proto: int, l4: Any) -> bytes:
    ip: Any
    if ":" in src:
        ip = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src), nxt=proto, hlim=64,
                          dst=socket.inet_pton(socket.AF_INET6, dst), data=l4)
        ip.plen = len(bytes(l4))
        etype = dpkt.ethernet.ETH_TYPE_IP6
    else:
        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=64,
                        data=l4)
        ip.len = len(ip)
        etype = dpkt.ethernet.ETH_TYPE_IP
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02\0\0\0\0\x01", dst=b"\x02\0\0\0\0\x02",
                                        type=etype, data=ip))


def tcp(src: str, sport: int, dst: str, dport: int, flags: int, data: bytes = b"") -> bytes:
    """A TCP packet without options: 40 IP bytes (60 over IPv6) plus ``data``."""
    segment = dpkt.tcp.TCP(sport=sport, dport=dport, flags=flags, seq=1, ack=1, data=data)
    return ip_packet(src, dst, 6, segment)


def udp(src: str, sport: int, dst: str, dport: int, data: bytes) -> bytes:
    datagram = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    datagram.ulen = len(datagram)
    return ip_packet(src, dst, 17, datagram)


def icmp(src: str, dst: str, icmp_type: int) -> bytes:
    echo = dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"ping")
    return ip_packet(src, dst, 1, dpkt.icmp.ICMP(type=icmp_type, code=0, data=echo))


def nfcapd_file(folder: Path, packets: list[Packet]) -> Path:
    """The nfcapd file nfpcapd makes of these (time offset, frame) packets."""
    folder.mkdir()
    with open(folder / "capture.pcap", "wb") as handle:
        writer = dpkt.pcap.Writer(handle)
        for offset, frame in sorted(packets):
            writer.writepkt(frame, T0 + offset)
    out = folder / "flows"
    out.mkdir()
    subprocess.run(["nfpcapd", "-r", str(folder / "capture.pcap"), "-w", str(out)],
                   check=True, capture_output=True, timeout=60)
    (made,) = out.iterdir()
    return made


def read(nfin: nf.NfdumpInput) -> tuple[list[Event], list[LineError]]:
    errors: list[LineError] = []
    records = list(nfin.records(errors.append))
    assert all(channel == NEW_FLOW and ts == ev["ts"] for ts, channel, ev in records)
    return [ev for _, _, ev in records], errors


def conn(ts: float, saddr: str, sport: int, daddr: str, dport: int, proto: str, state: str,
         history: str, duration: float, pkts: tuple[int, int], ip_bytes: tuple[int, int],
         payload: tuple[int, int]) -> Event:
    return {"ts": T0 + ts, "saddr": saddr, "sport": sport, "daddr": daddr, "dport": dport,
            "proto": proto, "service": "", "duration": duration, "state": state,
            "history": history, "spkts": pkts[0], "dpkts": pkts[1], "sbytes": payload[0],
            "dbytes": payload[1], "orig_ip_bytes": ip_bytes[0], "resp_ip_bytes": ip_bytes[1]}


# One generated connection of each kind, and the event it must give (uid aside).
CASES: list[tuple[list[Packet], Event]] = [
    ([(0.125, tcp(C, 40000, "10.0.0.2", 80, SYN)),
      (0.130, tcp("10.0.0.2", 80, C, 40000, SYN | ACK)),
      (0.200, tcp(C, 40000, "10.0.0.2", 80, ACK | PSH, b"q" * 100)),
      (0.250, tcp("10.0.0.2", 80, C, 40000, ACK | PSH, b"r" * 300)),
      (1.500, tcp(C, 40000, "10.0.0.2", 80, FIN | ACK)),
      (1.600, tcp("10.0.0.2", 80, C, 40000, FIN | ACK)),
      (1.601, tcp(C, 40000, "10.0.0.2", 80, ACK))],
     conn(0.125, C, 40000, "10.0.0.2", 80, "tcp", "SF", "ShADadFf", 1.476,
          (4, 3), (260, 420), (100, 300))),
    ([(2.000, tcp(C, 40001, "10.0.0.3", 22, SYN)),
      (2.001, tcp("10.0.0.3", 22, C, 40001, RST | ACK))],
     conn(2.0, C, 40001, "10.0.0.3", 22, "tcp", "REJ", "Sr", 0.001, (1, 1), (40, 40), (0, 0))),
    ([(3.000, tcp(C, 40002, "10.0.0.4", 443, SYN)),
      (4.000, tcp(C, 40002, "10.0.0.4", 443, SYN))],
     conn(3.0, C, 40002, "10.0.0.4", 443, "tcp", "S0", "S", 1.0, (2, 0), (80, 0), (0, 0))),
    ([(5.000, tcp(C, 40003, "10.0.0.5", 8080, SYN)),
      (5.001, tcp("10.0.0.5", 8080, C, 40003, SYN | ACK)),
      (5.002, tcp(C, 40003, "10.0.0.5", 8080, ACK | PSH, b"d" * 10)),
      (5.010, tcp(C, 40003, "10.0.0.5", 8080, RST))],
     conn(5.0, C, 40003, "10.0.0.5", 8080, "tcp", "RSTO", "ShADR", 0.01,
          (3, 1), (130, 40), (10, 0))),
    ([(6.000, tcp(C, 40004, "10.0.0.5", 8081, SYN)),
      (6.001, tcp("10.0.0.5", 8081, C, 40004, SYN | ACK)),
      (6.002, tcp(C, 40004, "10.0.0.5", 8081, ACK)),
      (6.500, tcp("10.0.0.5", 8081, C, 40004, RST | ACK))],
     conn(6.0, C, 40004, "10.0.0.5", 8081, "tcp", "RSTR", "ShAr", 0.5,
          (2, 2), (80, 80), (0, 0))),
    ([(7.000, tcp(C, 40005, "10.0.0.6", 25, SYN)),
      (7.250, tcp(C, 40005, "10.0.0.6", 25, FIN))],
     conn(7.0, C, 40005, "10.0.0.6", 25, "tcp", "SH", "SF", 0.25, (2, 0), (80, 0), (0, 0))),
    ([(8.000, tcp(C, 40006, "10.0.0.7", 21, SYN)),
      (8.250, tcp(C, 40006, "10.0.0.7", 21, RST))],
     conn(8.0, C, 40006, "10.0.0.7", 21, "tcp", "RSTOS0", "SR", 0.25,
          (2, 0), (80, 0), (0, 0))),
    # A reply whose request was not captured: from a port under 1024, turned around.
    ([(9.000, tcp("10.0.0.8", 445, C, 40007, RST | ACK))],
     conn(9.0, C, 40007, "10.0.0.8", 445, "tcp", "RSTRH", "r", 0.0, (0, 1), (0, 40), (0, 0))),
    ([(10.000, tcp("10.0.0.8", 80, C, 40008, SYN | ACK))],
     conn(10.0, C, 40008, "10.0.0.8", 80, "tcp", "OTH", "h", 0.0, (0, 1), (0, 40), (0, 0))),
    ([(11.000, tcp(C, 40009, "10.0.0.9", 993, SYN)),
      (11.001, tcp("10.0.0.9", 993, C, 40009, SYN | ACK)),
      (11.002, tcp(C, 40009, "10.0.0.9", 993, ACK))],
     conn(11.0, C, 40009, "10.0.0.9", 993, "tcp", "S1", "ShA", 0.002,
          (2, 1), (80, 40), (0, 0))),
    ([(12.000, udp(C, 33000, "10.0.0.53", 53, b"x" * 30)),
      (12.020, udp("10.0.0.53", 53, C, 33000, b"y" * 100))],
     conn(12.0, C, 33000, "10.0.0.53", 53, "udp", "SF", "Dd", 0.02,
          (1, 1), (58, 128), (30, 100))),
    ([(13.000, udp(C, 33001, "10.0.0.10", 9999, b"z" * 5))],
     conn(13.0, C, 33001, "10.0.0.10", 9999, "udp", "S0", "D", 0.0, (1, 0), (33, 0), (5, 0))),
    ([(14.000, udp("10.0.0.53", 53, C, 33002, b"w" * 50))],
     conn(14.0, C, 33002, "10.0.0.53", 53, "udp", "SHR", "d", 0.0, (0, 1), (0, 78), (0, 50))),
    # ICMP is not joined: Zeek's ports are the type and the code.
    ([(15.000, icmp(C, "10.0.0.11", 8))],
     conn(15.0, C, 8, "10.0.0.11", 0, "icmp", "OTH", "", 0.0, (1, 0), (32, 0), (4, 0))),
    ([(15.010, icmp("10.0.0.11", C, 0))],
     conn(15.01, "10.0.0.11", 0, C, 0, "icmp", "OTH", "", 0.0, (1, 0), (32, 0), (4, 0))),
    ([(16.000, tcp("2001:db8::1", 40010, "2001:db8::2", 80, SYN)),
      (16.001, tcp("2001:db8::2", 80, "2001:db8::1", 40010, RST | ACK))],
     conn(16.0, "2001:db8::1", 40010, "2001:db8::2", 80, "tcp", "REJ", "Sr", 0.001,
          (1, 1), (60, 60), (0, 0))),
]


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    return nfcapd_file(tmp_path / "all", [p for packets, _ in CASES for p in packets])


def test_sniff_knows_the_nfcapd_header() -> None:
    assert nf.sniff(b"\x0c\xa5\x01\x00" + bytes(136), "x")  # nfdump 1.6 (LAYOUT_VERSION_1)
    assert nf.sniff(b"\x0c\xa5\x02\x00" + bytes(36), "x")  # nfdump 1.7 (LAYOUT_VERSION_2)
    assert not nf.sniff(b"\x0c\xa5\x03\x00", "x")
    assert not nf.sniff(b"\xa5\x0c\x00\x01", "x")  # written big-endian: nfdump refuses it
    assert not nf.sniff(b"\x0c\xa5", "x")
    assert not nf.sniff(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00", "x")  # pcap
    assert not nf.sniff(b"#separator \\x09\n", "x")


@needs_nfdump
def test_every_kind_of_connection_gives_its_zeek_event(capture: Path) -> None:
    assert nf.sniff(capture.read_bytes()[:4096], capture.name)
    with nf.from_path(str(capture)) as nfin:
        events, errors = read(nfin)
        stats = nfin.files
    assert errors == []
    uids = [ev.pop("uid") for ev in events]
    assert events == [expected for _, expected in CASES]
    assert len(set(uids)) == len(uids) and all(u.startswith("N") and len(u) == 19 for u in uids)
    # 16 connections from 23 nfcapd records, in start order although the file is not.
    assert stats == [FileStats(str(capture), "conn", lines=28, parsed=23, bad=0, meta=5)]
    flow_keys = {k for k in Flow.__annotations__ if k not in ("profile", "tw")}
    kinds = {"ts": float, "duration": float, "uid": str, "saddr": str, "daddr": str,
             "proto": str, "service": str, "state": str, "history": str}
    for ev in events:
        assert flow_keys - {"smac", "dmac"} <= set(ev) | {"uid"}
        assert all(type(ev[k]) is kinds.get(k, int) for k in ev)


@needs_nfdump
def test_reading_again_gives_the_same_and_the_uids_are_stable(capture: Path) -> None:
    with nf.from_path(str(capture)) as nfin:
        first, _ = read(nfin)
        assert read(nfin)[0] == first
        assert nfin.count_lines() == 23  # records, from the file's own statistics
    with nf.from_path(str(capture)) as nfin:
        assert read(nfin)[0] == first


@needs_nfdump
def test_a_reply_after_the_pairing_window_stays_alone(tmp_path: Path) -> None:
    late = nfcapd_file(tmp_path / "late", [
        (0.0, tcp(C, 41000, "10.0.0.2", 80, SYN)),
        (35.0, tcp("10.0.0.2", 80, C, 41000, SYN | ACK)),
    ])
    with nf.from_path(str(late)) as nfin:
        events, _ = read(nfin)
    assert [(ev["ts"] - T0, ev["state"], ev["history"]) for ev in events] == [
        (0.0, "S0", "S"), (35.0, "OTH", "h")]


@needs_nfdump
def test_descriptor_input_leaves_the_callers_descriptor_open(capture: Path) -> None:
    fd = os.open(capture, os.O_RDONLY)
    try:
        os.lseek(fd, 100, os.SEEK_SET)  # nfdump reopens /dev/fd/N: the offset does not matter
        nfin = open_fd(fd, "sent.nfcapd")
        assert isinstance(nfin, nf.NfdumpInput)
        events, errors = read(nfin)
        assert len(events) == len(CASES) and errors == []
        assert nfin.files[0].name == "sent.nfcapd"
        nfin.close()
        with pytest.raises(InputError, match="closed"):
            nfin.records(lambda e: None)
        assert os.fstat(fd).st_size == capture.stat().st_size
        assert os.lseek(fd, 0, os.SEEK_CUR) == 100
    finally:
        os.close(fd)
    assert isinstance(open_path(str(capture)), nf.NfdumpInput)


@needs_nfdump
def test_stopping_early_ends_nfdump(capture: Path) -> None:
    with nf.from_path(str(capture)) as nfin:
        records = nfin.records(lambda e: None)
        next(records)
        records.close()  # kills and reaps the nfdump child
        assert len(read(nfin)[0]) == len(CASES)


@needs_nfdump
def test_a_damaged_file_is_refused_with_nfdumps_reason(capture: Path, tmp_path: Path) -> None:
    whole = capture.read_bytes()
    cut = tmp_path / "cut.nfcapd"
    cut.write_bytes(whole[:200])  # the header points past the end
    garbled = tmp_path / "garbled.nfcapd"
    garbled.write_bytes(whole[:4] + b"\xff" * 400)
    for damaged in (cut, garbled):
        with pytest.raises(InputError) as info:
            open_path(str(damaged))
        prefix = f"{damaged}: not a readable nfdump file: "
        message = str(info.value)
        assert message.startswith(prefix) and message != prefix, message
        assert "/dev/fd" not in message  # nfdump's words, about the file the user named
    with pytest.raises(InputError, match="cannot open"):
        nf.from_path(str(tmp_path / "missing.nfcapd"))


@needs_nfdump
def test_a_file_damaged_while_open_gives_one_bad_line(capture: Path, tmp_path: Path) -> None:
    copy = tmp_path / "shrinking.nfcapd"
    copy.write_bytes(capture.read_bytes())
    with nf.from_path(str(copy)) as nfin:
        os.truncate(copy, 300)  # after nfdump -v accepted it
        events, errors = read(nfin)
        (stats,) = nfin.files
    assert events == []
    (error,) = errors
    assert error.file == str(copy) and error.line == stats.lines
    assert error.reason.startswith(f"nfdump: Open file {copy}: ")  # nfdump's words
    assert (stats.parsed, stats.bad, stats.meta) == (0, 1, stats.lines - 1)


@needs_nfdump
def test_without_nfdump_the_error_says_what_to_install(
    capture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InputError, match="Debian package nfdump"):
        nf.from_path(str(capture))
