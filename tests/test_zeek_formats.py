"""Zeek log readers, formats and conversions: TSV and JSON, gzip, each log type's fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slipsd.events import LOG_CHANNELS, NEW_FLOW
from slipsd.inputs import ZeekInput

import zeekgen
from conftest import Event, _dns_records, assert_accounted, read, read_path


def pick(ev: Event, *keys: str) -> tuple[Any, ...]:
    return tuple(ev[k] for k in keys)


def expected_conn(rec: dict[str, Any], fmt: str) -> Event:
    """What the reader must make of a zeekgen conn record, spelled out independently."""
    ev: Event = {
        "ts": rec["ts"],
        "uid": rec["uid"],
        "saddr": rec["id.orig_h"],
        "daddr": rec["id.resp_h"],
        "sport": rec["id.orig_p"],
        "dport": rec["id.resp_p"],
        "proto": rec["proto"],
        "service": rec["service"] or "",
        "duration": 0.0 if rec["duration"] is None else rec["duration"],
        "sbytes": rec["orig_bytes"] or 0,
        "dbytes": rec["resp_bytes"] or 0,
        "spkts": rec["orig_pkts"],
        "dpkts": rec["resp_pkts"],
        "state": rec["conn_state"],
        "history": rec["history"] or "",
        "local_orig": rec["local_orig"],
        "local_resp": rec["local_resp"],
        "missed_bytes": rec["missed_bytes"],
        "orig_ip_bytes": rec["orig_ip_bytes"],
        "resp_ip_bytes": rec["resp_ip_bytes"],
    }
    if fmt == "tsv":
        ev["tunnel_parents"] = None  # TSV keeps unset columns; Zeek's JSON leaves them out
    return ev


@pytest.mark.parametrize("fmt", ["json", "tsv"])
def test_conn_round_trip(tmp_path: Path, fmt: str) -> None:
    flows = zeekgen.make_conn_flows(1500, seed=3)
    zeekgen.write_conn_log(str(tmp_path / "conn.log"), flows, fmt)
    records, errors = read_path(tmp_path)
    assert errors == []
    assert [ev for _, _, ev in records] == [expected_conn(f, fmt) for f in flows]
    assert all(ch == NEW_FLOW and ts == ev["ts"] for ts, ch, ev in records)
    for _, _, ev in records:
        assert type(ev["ts"]) is float and type(ev["duration"]) is float
        assert type(ev["sbytes"]) is int and type(ev["sport"]) is int


@pytest.mark.parametrize("fmt", ["json", "tsv"])
def test_dns_round_trip(tmp_path: Path, fmt: str) -> None:
    recs = _dns_records()
    zeekgen.write_log(str(tmp_path / "dns.log"), "dns", recs, fmt)
    records, errors = read_path(tmp_path / "dns.log")
    assert errors == []
    assert [ch for _, ch, _ in records] == [LOG_CHANNELS["dns"]] * 3
    events = [ev for _, _, ev in records]
    for rec, ev in zip(recs, events, strict=True):
        assert pick(ev, "ts", "uid", "saddr", "sport") == (rec["ts"], "Cdns", "10.0.0.5", 5353)
        assert pick(ev, "daddr", "dport", "proto") == ("10.0.0.1", 53, "udp")
        assert ev["query"] == rec["query"]
        assert ev["qtype_name"] == rec["qtype_name"] and ev["rcode_name"] == rec["rcode_name"]
        assert ev["answers"] == (rec["answers"] or [])
        assert ev["TTLs"] == (rec["TTLs"] or [])
    assert events[0]["AA"] is False and events[1]["rtt"] == 0.0125 and events[2]["trans_id"] == 7


TYPED_TSV = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tweird\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tn\tratio\tflag\tnames"
    "\tnums\tnote\tremote_location.city\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tint\tdouble\tbool\tset[string]"
    "\tvector[count]\tstring\tstring\n"
)


def test_tsv_type_conversion(tmp_path: Path) -> None:
    path = tmp_path / "weird.log"
    path.write_text(
        TYPED_TSV
        + "1.5\tCu1\t10.0.0.1\t80\t10.0.0.2\t443\t-7\t0.25\tT\ta,b\t1,2,3\tx\\x09y\tPrague\n"
        + "2.0\t-\t-\t-\t-\t-\t-\t-\tF\t(empty)\t(empty)\t(empty)\t-\n"
        + "3.0\tCu3\t10.0.0.1\t1\t10.0.0.2\t2\t0\t1e3\t-\t-\t-\t\\x2d\t\\xc3\\xa9\n"
    )
    records, errors = read_path(path)
    assert errors == []
    first, second, third = (ev for _, _, ev in records)
    assert first == {
        "ts": 1.5, "uid": "Cu1", "saddr": "10.0.0.1", "sport": 80, "daddr": "10.0.0.2",
        "dport": 443, "n": -7, "ratio": 0.25, "flag": True, "names": ["a", "b"],
        "nums": [1, 2, 3], "note": "x\ty", "remote_location_city": "Prague",
    }  # fmt: skip
    # Unset common keys get their defaults, other unset fields are None, (empty) is empty.
    assert (second["uid"], second["saddr"], second["daddr"]) == ("", "", "")
    assert (second["sport"], second["dport"]) == (0, 0)
    assert second["n"] is None and second["ratio"] is None and second["flag"] is False
    assert second["names"] == [] and second["nums"] == [] and second["note"] == ""
    assert second["remote_location_city"] is None
    assert third["ratio"] == 1000.0 and third["flag"] is None and third["names"] is None
    assert third["note"] == "-" and third["remote_location_city"] == "é"


def test_tsv_several_header_blocks(tmp_path: Path) -> None:
    one = zeekgen.make_conn_flows(5, seed=1, start_ts=100.0, span=10.0)
    two = zeekgen.make_conn_flows(4, seed=2, start_ts=200.0, span=10.0)
    zeekgen.write_conn_log(str(tmp_path / "a"), one, "tsv")
    # The second block has its columns in another order and one column fewer.
    fields = [f for f in zeekgen.FIELDS["conn"] if f[0] != "tunnel_parents"][::-1]
    for rec in two:
        del rec["tunnel_parents"]
    zeekgen.write_log(str(tmp_path / "b"), "conn", two, "tsv", fields=fields)
    text = (tmp_path / "a").read_text() + (tmp_path / "b").read_text()
    (tmp_path / "conn.log").write_text(text)
    records, errors = read_path(tmp_path / "conn.log")
    assert errors == []
    events = [ev for _, _, ev in records]
    assert events[:5] == [expected_conn(f, "tsv") for f in one]
    assert events[5:] == [expected_conn(f, "json") for f in two]
    zin = ZeekInput.from_path(str(tmp_path / "conn.log"))
    read(zin)
    assert zin.files[0].meta == 18 and zin.files[0].parsed == 9
    assert_accounted(zin.files)


def test_tsv_header_with_leading_whitespace_and_data_after_close(tmp_path: Path) -> None:
    zeekgen.write_conn_log(str(tmp_path / "x"), zeekgen.make_conn_flows(3, seed=1), "tsv")
    lines = (tmp_path / "x").read_text().splitlines(keepends=True)
    (tmp_path / "x").unlink()
    # Seen in real logs: a tab before '#separator', and lines repeated after '#close'.
    text = "\t" + "".join(lines) + lines[8] + lines[-1]
    (tmp_path / "conn.log").write_text(text)
    records, errors = read_path(tmp_path)
    assert errors == []
    assert len(records) == 4 and records[3][2] == records[0][2]


def test_json_iso8601_timestamps(tmp_path: Path) -> None:
    flows = zeekgen.make_conn_flows(20, seed=8)
    zeekgen.write_log(str(tmp_path / "conn.log"), "conn", flows, "json", iso_ts=True)
    assert '"ts":"20' in (tmp_path / "conn.log").read_text()
    records, errors = read_path(tmp_path)
    assert errors == []
    assert [ts for ts, _, _ in records] == pytest.approx([f["ts"] for f in flows], abs=1e-6)


def test_conn_specifics(tmp_path: Path) -> None:
    lines = [
        {"ts": 1.0, "uid": "C1", "id.orig_h": "10.0.0.1", "id.orig_p": 1, "id.resp_h": "10.0.0.2",
         "id.resp_p": 2, "proto": "TCP", "orig_l2_addr": "aa:bb:cc:dd:ee:ff",
         "resp_l2_addr": "11:22:33:44:55:66", "duration": 3, "orig_bytes": "12"},
        {"ts": 2.0, "proto": "udp"},
    ]  # fmt: skip
    (tmp_path / "conn.log").write_text("".join(json.dumps(x) + "\n" for x in lines))
    records, errors = read_path(tmp_path)
    assert errors == []
    first, second = (ev for _, _, ev in records)
    assert first["proto"] == "tcp"
    assert (first["smac"], first["dmac"]) == ("aa:bb:cc:dd:ee:ff", "11:22:33:44:55:66")
    assert first["duration"] == 3.0 and type(first["duration"]) is float
    assert first["sbytes"] == 12
    assert "orig_l2_addr" not in first and "orig_bytes" not in first
    assert "smac" not in second and "dmac" not in second
    assert pick(second, "uid", "saddr", "service", "state", "history") == ("",) * 5
    assert (second["duration"], second["sbytes"], second["dpkts"]) == (0.0, 0, 0)


def test_tsv_unset_mac_columns_are_dropped(tmp_path: Path) -> None:
    fields = [*zeekgen.FIELDS["conn"], ("orig_l2_addr", "string"), ("resp_l2_addr", "string")]
    rec = zeekgen.make_conn_flows(2, seed=1)
    rec[0] |= {"orig_l2_addr": "aa:aa:aa:aa:aa:aa", "resp_l2_addr": None}
    zeekgen.write_log(str(tmp_path / "conn.log"), "conn", rec, "tsv", fields=fields)
    (first, second), errors = read_path(tmp_path)
    assert errors == []
    assert first[2]["smac"] == "aa:aa:aa:aa:aa:aa" and "dmac" not in first[2]
    assert "smac" not in second[2]


# Hand-written JSON logs of the types with special rules (dhcp also in Zeek's old layout).
OTHER_LOGS = {
    "arp.log": '{"ts":1.0,"operation":"request","src_mac":"m1","dst_mac":"m2",'
    '"orig_h":"192.168.1.5","resp_h":"192.168.1.9","orig_hw":"h1","resp_hw":"h2"}\n',
    "dhcp.log": '{"ts":2.0,"uids":["Cd1","Cd2"],"client_addr":"10.0.0.7",'
    '"server_addr":"10.0.0.1","mac":"m","requested_addr":"10.0.0.7",'
    '"msg_types":["REQUEST","ACK"]}\n'
    '{"ts":2.5,"uid":"Cold","id.orig_h":"0.0.0.0","id.resp_h":"255.255.255.255",'
    '"id.orig_p":68,"id.resp_p":67,"mac":"m"}\n',
    "files.log": '{"ts":3.0,"fuid":"F1","tx_hosts":["1.2.3.4"],"rx_hosts":["10.0.0.7"],'
    '"conn_uids":["Cf"],"md5":"x"}\n',
    "notice.log": '{"ts":4.0,"note":"Scan::Port_Scan","src":"10.0.0.9","dst":"10.0.0.10","p":22}\n',
    "software.log": '{"ts":5.0,"host":"10.0.0.3","host_p":22,"name":"OpenSSH","version.major":8}\n',
    "tunnel.log": '{"ts":6.0,"uid":"Ct","id.orig_h":"10.0.0.2","id.orig_p":0,'
    '"id.resp_h":"5.6.7.8","id.resp_p":0,"tunnel_type":"Tunnel::GRE",'
    '"action":"Tunnel::DISCOVER"}\n',
}


def test_other_log_types_are_normalised(tmp_path: Path) -> None:
    for name, text in OTHER_LOGS.items():
        (tmp_path / name).write_text(text)
    records, errors = read_path(tmp_path)
    assert errors == []
    by = {ch: ev for _, ch, ev in records}
    arp = by[LOG_CHANNELS["arp"]]
    assert pick(arp, "saddr", "daddr", "uid", "sport") == ("192.168.1.5", "192.168.1.9", "", 0)
    assert pick(arp, "operation", "src_mac", "orig_hw", "resp_hw") == ("request", "m1", "h1", "h2")
    dhcp = [ev for _, ch, ev in records if ch == LOG_CHANNELS["dhcp"]]
    assert pick(dhcp[0], "saddr", "daddr", "uid") == ("10.0.0.7", "10.0.0.1", "Cd1")
    assert dhcp[0]["msg_types"] == ["REQUEST", "ACK"] and dhcp[0]["uids"] == ["Cd1", "Cd2"]
    assert pick(dhcp[1], "saddr", "uid", "dport") == ("0.0.0.0", "Cold", 67)
    files = by[LOG_CHANNELS["files"]]
    assert pick(files, "saddr", "daddr", "uid", "md5") == ("1.2.3.4", "10.0.0.7", "Cf", "x")
    notice = by[LOG_CHANNELS["notice"]]
    assert pick(notice, "saddr", "daddr", "dport") == ("10.0.0.9", "10.0.0.10", 22)
    software = by[LOG_CHANNELS["software"]]
    assert pick(software, "saddr", "sport", "version_major") == ("10.0.0.3", 22, 8)
    tunnel = by[LOG_CHANNELS["tunnel"]]
    assert pick(tunnel, "saddr", "daddr", "tunnel_type") == ("10.0.0.2", "5.6.7.8", "Tunnel::GRE")


def test_gzip_logs(tmp_path: Path) -> None:
    flows = zeekgen.make_conn_flows(40, seed=6)
    zeekgen.write_conn_log(str(tmp_path / "conn.log.gz"), flows[:20], "tsv")
    zeekgen.write_log(str(tmp_path / "conn.01:00:00-02:00:00.log.gz"), "conn", flows[20:], "json")
    records, errors = read_path(tmp_path)
    assert errors == []
    events = sorted((ev for _, _, ev in records), key=lambda e: e["uid"])
    expected = [expected_conn(f, "tsv") for f in flows[:20]]
    expected += [expected_conn(f, "json") for f in flows[20:]]
    assert events == sorted(expected, key=lambda e: e["uid"])
    single, errors = read_path(tmp_path / "conn.log.gz")
    assert errors == [] and len(single) == 20
