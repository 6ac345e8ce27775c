"""The Suricata eve.json reader on generated files: every event kind, DNS joining, bad lines."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from slipsd.events import LOG_CHANNELS, NEW_FLOW
from slipsd.inputs import InputError, LineError, open_fd, open_path, suricata
from slipsd.inputs.suricata import SuricataInput

Event = dict[str, Any]
T0 = datetime(2021, 6, 6, 13, 59, 46, 457984, tzinfo=UTC).timestamp()
DNS, HTTP, SSL = LOG_CHANNELS["dns"], LOG_CHANNELS["http"], LOG_CHANNELS["ssl"]
SSH, FILES = LOG_CHANNELS["ssh"], LOG_CHANNELS["files"]


def at(seconds: float) -> str:
    """An eve timestamp `seconds` after T0, written with a +0200 offset like Suricata."""
    when = datetime.fromtimestamp(T0 + seconds, timezone(timedelta(hours=2)))
    return when.strftime("%Y-%m-%dT%H:%M:%S.%f%z")


def base(kind: str, seconds: float, flow_id: int = 7, proto: str = "TCP", sport: int = 51698,
         dport: int = 80, src: str = "10.0.0.1", dst: str = "192.0.2.9") -> Event:
    return {"timestamp": at(seconds), "flow_id": flow_id, "event_type": kind, "src_ip": src,
            "src_port": sport, "dest_ip": dst, "dest_port": dport, "proto": proto}


def tcp_flow(seconds: float, ts_flags: str, tc_flags: str, pkts: tuple[int, int] = (3, 2),
             byts: tuple[int, int] = (300, 200), flow_id: int = 7, app: str | None = None,
             dport: int = 80) -> Event:
    obj = base("flow", 1000.0, flow_id, dport=dport)  # logged late, as Suricata does
    obj["flow"] = {"pkts_toserver": pkts[0], "pkts_toclient": pkts[1],
                   "bytes_toserver": byts[0], "bytes_toclient": byts[1],
                   "start": at(seconds), "end": at(seconds + 2.5), "age": 3,
                   "state": "closed", "reason": "timeout", "alerted": False}
    obj["tcp"] = {"tcp_flags": "1b", "tcp_flags_ts": ts_flags, "tcp_flags_tc": tc_flags}
    if app is not None:
        obj["app_proto"] = app
    return obj


def write(path: Path, objs: list[Event | str]) -> Path:
    lines = [o if isinstance(o, str) else json.dumps(o) for o in objs]
    path.write_text("\n".join(lines) + "\n")
    return path


def read(path: Path) -> tuple[list[tuple[float, str, Event]], list[str], SuricataInput]:
    source = suricata.from_path(str(path))
    errors: list[LineError] = []
    records = list(source.records(errors.append))
    stats = source.files[0]
    assert stats.lines == stats.parsed + stats.bad + stats.meta
    assert [ts for ts, _, _ in records] == sorted(ts for ts, _, _ in records)
    assert all(ts == ev["ts"] for ts, _, ev in records)
    return records, [str(e) for e in errors], source


def only(tmp_path: Path, obj: Event) -> tuple[str, Event]:
    records, errors, _ = read(write(tmp_path / "eve.json", [obj]))
    assert errors == [] and len(records) == 1
    return records[0][1], records[0][2]


@pytest.mark.parametrize(("ts_flags", "tc_flags", "pkts", "expected"), [
    ("02", "14", (1, 1), ("REJ", "Sr", 0, 0)),
    ("02", "00", (1, 0), ("S0", "S", 0, 0)),
    ("1b", "1b", (5, 4), ("SF", "ShADadFf", 300, 200)),
    ("13", "12", (5, 2), ("S2", "ShAF", 0, 0)),
    ("06", "12", (2, 1), ("RSTO", "ShR", 0, 0)),
    ("1a", "1a", (4, 4), ("S1", "ShADad", 300, 200)),
    ("00", "00", (2, 2), ("OTH", "", 300, 200)),
])  # fmt: skip
def test_tcp_flows(tmp_path: Path, ts_flags: str, tc_flags: str, pkts: tuple[int, int],
                   expected: tuple[str, str, int, int]) -> None:
    byts = (300, 200 if pkts[1] else 0)
    channel, ev = only(tmp_path, tcp_flow(10.0, ts_flags, tc_flags, pkts, byts))
    assert channel == NEW_FLOW
    assert (ev["state"], ev["history"], ev["sbytes"], ev["dbytes"]) == expected
    assert ev["ts"] == pytest.approx(T0 + 10.0, abs=1e-6)  # flow.start, not timestamp
    assert ev["duration"] == pytest.approx(2.5)
    assert (ev["saddr"], ev["sport"], ev["daddr"], ev["dport"]) == ("10.0.0.1", 51698,
                                                                    "192.0.2.9", 80)
    assert (ev["proto"], ev["spkts"], ev["dpkts"]) == ("tcp", *pkts)
    assert (ev["orig_ip_bytes"], ev["resp_ip_bytes"]) == byts
    assert ev["uid"].startswith("S") and len(ev["uid"]) == 17


def test_other_flows_and_services(tmp_path: Path) -> None:
    udp = base("flow", 5.0, 8, "UDP", 1900, 44232)
    udp["app_proto"] = "failed"
    udp["flow"] = {"pkts_toserver": 12, "pkts_toclient": 0, "bytes_toserver": 4056,
                   "bytes_toclient": 0, "start": at(1.0), "age": 4, "state": "new"}
    _, ev = only(tmp_path, udp)
    assert (ev["proto"], ev["state"], ev["history"], ev["service"]) == ("udp", "S0", "D", "")
    assert (ev["duration"], ev["sbytes"]) == (4.0, 4056)  # no end: the age
    udp["flow"]["pkts_toclient"], udp["app_proto"] = 1, "dns"
    _, ev = only(tmp_path, udp)
    assert (ev["state"], ev["history"], ev["service"]) == ("SF", "Dd", "dns")
    icmp = base("flow", 5.0, 9, "IPv6-ICMP")
    del icmp["src_port"], icmp["dest_port"]
    icmp |= {"icmp_type": 128, "icmp_code": 0, "flow": {"pkts_toserver": 1, "start": at(2)}}
    _, ev = only(tmp_path, icmp)
    assert (ev["proto"], ev["sport"], ev["dport"], ev["state"]) == ("icmp", 128, 0, "OTH")
    _, ev = only(tmp_path, tcp_flow(1.0, "1b", "1b", app="tls", dport=443))
    assert ev["service"] == "ssl"


def test_combined_flags_only(tmp_path: Path) -> None:
    obj = tcp_flow(1.0, "02", "14")
    obj["tcp"] = {"tcp_flags": "1b", "syn": True, "fin": True, "psh": True, "ack": True}
    _, ev = only(tmp_path, obj)
    assert (ev["state"], ev["history"]) == ("SF", "ShADadFf")


def dns(seconds: float, kind: str, flow_id: int = 20, tid: int = 2, **fields: Any) -> Event:
    obj = base("dns", seconds, flow_id, "UDP", 35790, 53, dst="10.0.0.53")
    obj["dns"] = {"type": kind, "id": tid, "rrname": "www.example.com", "rrtype": "A"} | fields
    return obj


def test_dns_queries_and_answers_become_one_record(tmp_path: Path) -> None:
    answers = [{"rrname": "www.example.com", "rrtype": "CNAME", "ttl": 60, "rdata": "x.cdn"},
               {"rrname": "x.cdn", "rrtype": "A", "ttl": 30, "rdata": "192.0.2.80"}]
    lines: list[Event | str] = [
        dns(1.0, "query"),
        dns(1.1, "answer", version=2, rcode="NOERROR", rd=True, ra=True, answers=answers,
            grouped={"A": ["192.0.2.80"], "CNAME": ["x.cdn"]}),
        # Two copies of one query, then two answers: each answer takes the oldest.
        dns(2.0, "query", tid=3), dns(2.0001, "query", tid=3),
        dns(2.1, "answer", tid=3, version=2, rcode="NOERROR", grouped={"A": ["192.0.2.1"]}),
        dns(2.1001, "answer", tid=3, version=2, rcode="NOERROR", grouped={"A": ["192.0.2.1"]}),
        dns(3.0, "query", tid=4, rrtype="AAAA"),
        dns(3.1, "answer", tid=4, version=2, rcode="NXDOMAIN"),
        dns(4.0, "query", tid=5),  # never answered
        # Format 1: one line per answer record.
        dns(5.0, "query", tid=6),
        dns(5.1, "answer", tid=6, rcode="NOERROR", rrtype="CNAME", ttl=10, rdata="y.cdn"),
        dns(5.1, "answer", tid=6, rcode="NOERROR", rrtype="A", ttl=20, rdata="192.0.2.6"),
        # Format 3 (Suricata 8): the question in "queries".
        dns(6.0, "request", tid=7, version=3, rrname=None, queries=[
            {"rrname": "v3.example", "rrtype": "TXT"}]),
        dns(6.1, "response", tid=7, version=3, rcode="NOERROR", rrname=None,
            answers=[{"rrname": "v3.example", "rrtype": "TXT", "ttl": 5, "rdata": "hi"}]),
    ]
    # An answer whose query was not logged, written from the server's side.
    server_side = dns(7.0, "answer", flow_id=21, tid=9, version=2, rcode="SERVFAIL")
    server_side |= {"src_ip": "10.0.0.53", "src_port": 53, "dest_ip": "10.0.0.1",
                    "dest_port": 35790}
    lines.append(server_side)
    records, errors, source = read(write(tmp_path / "dns.json", lines))
    assert errors == []
    events = [ev for _, ch, ev in records if ch == DNS]
    assert len(events) == len(records) == 8
    first = events[0]
    assert first["ts"] == pytest.approx(T0 + 1.0, abs=1e-6)  # the query's time
    assert (first["query"], first["qtype_name"], first["qtype"]) == ("www.example.com", "A", 1)
    assert (first["rcode_name"], first["rcode"], first["trans_id"]) == ("NOERROR", 0, 2)
    assert first["answers"] == ["x.cdn", "192.0.2.80"] and first["TTLs"] == [60.0, 30.0]
    assert (first["RD"], first["RA"], first["proto"]) == (True, True, "udp")
    assert (first["saddr"], first["daddr"], first["dport"]) == ("10.0.0.1", "10.0.0.53", 53)
    assert [e["answers"] for e in events[1:3]] == [["192.0.2.1"], ["192.0.2.1"]]
    assert events[1]["TTLs"] == []  # the grouped format has no TTLs
    assert (events[3]["qtype_name"], events[3]["rcode_name"], events[3]["answers"]) == (
        "AAAA", "NXDOMAIN", [])
    assert (events[4]["rcode_name"], events[4]["answers"]) == ("", [])
    assert events[5]["answers"] == ["y.cdn", "192.0.2.6"] and events[5]["TTLs"] == [10.0, 20.0]
    assert (events[6]["query"], events[6]["qtype_name"], events[6]["answers"]) == (
        "v3.example", "TXT", ["hi"])
    assert (events[7]["saddr"], events[7]["sport"], events[7]["rcode_name"]) == (
        "10.0.0.1", 35790, "SERVFAIL")
    stats = source.files[0]
    assert (stats.lines, stats.parsed, stats.bad, stats.meta) == (15, 8, 0, 7)


def test_application_events(tmp_path: Path) -> None:
    http = base("http", 3.0, 7) | {"tx_id": 0, "http": {
        "hostname": "example.com", "url": "/a?b", "http_user_agent": "curl/8", "http_method":
        "GET", "protocol": "HTTP/1.1", "status": 200, "length": 47, "http_refer": "http://r/",
        "http_content_type": "text/html; charset=utf-8"}}
    tls = base("tls", 4.0, 7, dport=443) | {"tls": {
        "subject": "CN=example.com", "issuerdn": "CN=CA", "sni": "example.com",
        "version": "TLS 1.2", "serial": "01", "notbefore": "2020-03-19T09:44:08",
        "ja3": {"hash": "b720", "string": "770"}, "ja3s": {"hash": "ad90", "string": "770"}}}
    ssh = base("ssh", 5.0, 8, dport=22) | {"ssh": {
        "client": {"proto_version": "2.0", "software_version": "OpenSSH_8.2p1",
                   "hassh": {"hash": "ec7378c1"}},
        "server": {"proto_version": "2.0", "software_version": "OpenSSH_7.4"}}}
    fileinfo = base("fileinfo", 6.0, 7, sport=80, dport=51230) | {
        "app_proto": "http", "http": {"http_content_type": "application/x-dosexec"},
        "fileinfo": {"filename": "/a.exe", "size": 4096, "md5": "d41d", "sha256": "e3b0",
                     "state": "CLOSED", "tx_id": 0}}
    flow = tcp_flow(2.0, "1b", "1b", app="http")
    records, errors, _ = read(write(tmp_path / "app.json", [http, tls, ssh, fileinfo, flow]))
    assert errors == []
    assert [ch for _, ch, _ in records] == [NEW_FLOW, HTTP, SSL, SSH, FILES]
    evs = [ev for _, _, ev in records]
    conn, h, t, s, f = evs
    assert conn["uid"] == h["uid"] == t["uid"] == f["uid"] != s["uid"]  # one flow_id
    assert (h["method"], h["host"], h["uri"], h["user_agent"]) == ("GET", "example.com", "/a?b",
                                                                   "curl/8")
    assert (h["status_code"], h["response_body_len"], h["version"]) == (200, 47, "1.1")
    assert (h["referrer"], h["resp_mime_types"], h["trans_depth"]) == ("http://r/",
                                                                       ["text/html"], 1)
    assert (t["server_name"], t["version"], t["subject"], t["issuer"]) == (
        "example.com", "TLSv12", "CN=example.com", "CN=CA")
    assert (t["ja3"], t["ja3s"], t["not_valid_after"]) == ("b720", "ad90", "")
    assert (s["client"], s["server"], s["version"]) == ("SSH-2.0-OpenSSH_8.2p1",
                                                        "SSH-2.0-OpenSSH_7.4", 2)
    assert (s["hassh"], s["hasshServer"]) == ("ec7378c1", "")
    assert "auth_success" not in s  # Suricata cannot tell
    assert (f["filename"], f["total_bytes"], f["md5"], f["sha1"], f["sha256"]) == (
        "/a.exe", 4096, "d41d", "", "e3b0")
    assert (f["tx_hosts"], f["rx_hosts"], f["conn_uids"]) == (["10.0.0.1"], ["192.0.2.9"],
                                                             [f["uid"]])
    assert (f["source"], f["mime_type"], f["fuid"][0]) == ("HTTP", "application/x-dosexec", "F")


def test_other_event_types_blank_and_bad_lines(tmp_path: Path) -> None:
    alert = base("alert", 1.0) | {"alert": {"signature": "ET SCAN", "severity": 2}}
    stats = {"timestamp": at(1.0), "event_type": "stats", "stats": {"uptime": 5}}
    no_flow = base("flow", 2.0)
    bad_time = tcp_flow(1.0, "02", "00")
    bad_time["flow"]["start"] = "yesterday"
    bad_port = tcp_flow(1.0, "02", "00") | {"src_port": "80"}
    bad_flags = tcp_flow(1.0, "zz", "00")
    lines: list[Event | str] = [
        alert, stats, base("anomaly", 1.0), "", "{broken", "[1, 2]",
        {"timestamp": at(1.0), "src_ip": "10.0.0.1"}, no_flow, bad_time, bad_port, bad_flags,
        base("http", 3.0) | {"http": {"status": "OK"}},
        dns(1.0, "weird"), tcp_flow(1.0, "02", "00"),
    ]
    path = write(tmp_path / "mixed.json", lines)
    records, errors, source = read(path)
    assert len(records) == 1
    name = str(path)
    assert errors == [
        f"{name}:5: invalid JSON: Expecting property name enclosed in double quotes",
        f"{name}:6: not a JSON object",
        f"{name}:7: no event_type",
        f"{name}:8: flow event: no 'flow' object",
        f"{name}:9: flow event: flow.start 'yesterday': not an ISO 8601 time",
        f"{name}:10: flow event: field 'src_port': not an integer: '80'",
        f"{name}:11: flow event: field tcp.tcp_flags_ts: not hex flags: 'zz'",
        f"{name}:12: http event: field 'status': not an integer: 'OK'",
        f"{name}:13: dns event: dns.type 'weird' is neither a query nor an answer",
    ]
    st = source.files[0]
    assert (st.lines, st.parsed, st.bad, st.meta) == (14, 1, 9, 4)
    assert st.log_type == "eve" and source.count_lines() == 14


def test_records_are_sorted_by_time(tmp_path: Path) -> None:
    lines: list[Event | str] = [tcp_flow(float(s), "02", "00", flow_id=s) for s in (9, 3, 6, 1)]
    lines.insert(2, base("http", 4.0, 3))
    lines[2]["http"] = {"url": "/"}  # type: ignore[index]
    records, errors, _ = read(write(tmp_path / "o.json", lines))
    assert errors == []
    assert [round(ts - T0) for ts, _, _ in records] == [1, 3, 4, 6, 9]


def test_sniff_and_dispatch(tmp_path: Path) -> None:
    first = json.dumps(base("flow", 1.0)).encode()
    assert suricata.sniff(first + b"\n", "x")
    assert suricata.sniff(b"\n  " + first + b"\n", "x")
    long_stats = json.dumps({"timestamp": at(0), "event_type": "stats",
                             "stats": {"x" * 10: list(range(3000))}}).encode()
    assert suricata.sniff(long_stats[:4096], "x")  # cut inside its first line
    assert suricata.sniff(gzip.compress(first + b"\n"), "x")
    assert not suricata.sniff(b'{"ts": 1.0, "uid": "C1", "id.orig_h": "10.0.0.1"}\n', "x")
    assert not suricata.sniff(b'{"event_type": "flow"}\n', "x")
    assert not suricata.sniff(b"StartTime,SrcAddr,DstAddr\n", "x")
    path = write(tmp_path / "capture.log", [tcp_flow(1.0, "02", "00")])
    source = open_path(str(path))
    assert isinstance(source, SuricataInput)
    assert source.log_types == {"conn", "dns", "http", "ssl", "ssh", "files"}
    fd = os.open(path, os.O_RDONLY)
    try:
        source = open_fd(fd, "from-client")
        assert isinstance(source, SuricataInput)
        assert len(list(source.records(lambda e: None))) == 1
        source.close()
        os.fstat(fd)  # the caller's descriptor is still open
        with pytest.raises(InputError, match="closed"):
            source.records(lambda e: None)
    finally:
        os.close(fd)
    other = tmp_path / "zeek.json"
    other.write_text('{"ts": 1.0, "uid": "C1"}\n')
    with pytest.raises(InputError, match=r"not a Suricata eve\.json file"):
        suricata.from_path(str(other))
