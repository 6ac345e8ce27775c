"""Zeek log readers: formats, conversions, folders, descriptors, bad lines, real corpus."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from slipsd.events import LOG_CHANNELS, NEW_FLOW  # noqa: E402
from slipsd.inputs import FileStats, InputError, LineError, ZeekInput  # noqa: E402

import zeekgen  # noqa: E402

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

Event = dict[str, Any]


def read(zin: ZeekInput) -> tuple[list[tuple[float, str, Event]], list[LineError]]:
    errors: list[LineError] = []
    records = list(zin.records(errors.append))
    return records, errors


def read_path(path: Path) -> tuple[list[tuple[float, str, Event]], list[LineError]]:
    return read(ZeekInput.from_path(str(path)))


def pick(ev: Event, *keys: str) -> tuple[Any, ...]:
    return tuple(ev[k] for k in keys)


def assert_accounted(files: list[FileStats]) -> None:
    for stats in files:
        assert stats.lines == stats.parsed + stats.bad + stats.meta, stats


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


# --- formats and conversions -------------------------------------------------------


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


def _dns_records() -> list[dict[str, Any]]:
    base = {"uid": "Cdns", "id.orig_h": "10.0.0.5", "id.orig_p": 5353}
    base |= {"id.resp_h": "10.0.0.1", "id.resp_p": 53, "proto": "udp"}
    return [
        base | {"ts": 10.5, "query": "example.com", "qtype_name": "A", "rcode_name": "NOERROR",
                "answers": ["93.184.216.34", "alias.example.com"], "TTLs": [300.0, 60.5],
                "AA": False, "rejected": False},
        base | {"ts": 11.25, "query": "nx.example", "qtype_name": "AAAA", "rcode_name": "NXDOMAIN",
                "answers": None, "TTLs": None, "rtt": 0.0125},
        base | {"ts": 12.0, "query": "txt.example", "qtype_name": "TXT", "rcode_name": "NOERROR",
                "answers": ["v=spf1, -all", "tab\there"], "TTLs": [5.0, 5.0], "trans_id": 7},
    ]  # fmt: skip


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


# --- files, folders, descriptors ---------------------------------------------------


def _small_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "zeek"
    folder.mkdir()
    zeekgen.write_conn_log(str(folder / "conn.log"), zeekgen.make_conn_flows(50, seed=1), "tsv")
    zeekgen.write_log(str(folder / "dns.log"), "dns", _dns_records(), "json")
    return folder


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


def test_single_file_equals_folder(tmp_path: Path) -> None:
    folder = _small_folder(tmp_path)
    from_folder, _ = read_path(folder)
    conn_only, _ = read_path(folder / "conn.log")
    assert [r for r in from_folder if r[1] == NEW_FLOW] == conn_only
    assert len(conn_only) == 50


def test_type_from_path_header_and_rotated_names(tmp_path: Path) -> None:
    zeekgen.write_log(str(tmp_path / "capture-1.txt"), "dns", _dns_records(), "tsv")
    zeekgen.write_conn_log(str(tmp_path / "conn.00:00:00-01:00:00.log"),
                           zeekgen.make_conn_flows(3, seed=1), "json")  # fmt: skip
    zin = ZeekInput.from_path(str(tmp_path))
    records, errors = read(zin)
    assert errors == []
    assert sorted((Path(f.name).name, f.log_type) for f in zin.files) == [
        ("capture-1.txt", "dns"),
        ("conn.00:00:00-01:00:00.log", "conn"),
    ]
    assert len(records) == 6


def test_ignored_files_are_listed(tmp_path: Path) -> None:
    folder = _small_folder(tmp_path)
    (folder / "pe.log").write_text('{"ts": 1.0, "id": "F1"}\n')
    zeekgen.write_log(str(folder / "packet_filter.log"), "packet_filter",
                      [{"ts": 1.0, "node": "zeek"}], "tsv")  # fmt: skip
    (folder / "loaded_scripts.log").write_text('{"name": "/x.zeek"}\n')
    (folder / "README.txt").write_text("notes\n")
    (folder / "sub").mkdir()
    zin = ZeekInput.from_path(str(folder))
    records, _ = read(zin)
    ignored = sorted(Path(p.rstrip("/")).name for p in zin.ignored)
    assert ignored == ["README.txt", "loaded_scripts.log", "packet_filter.log", "pe.log", "sub"]
    assert sorted(f.log_type for f in zin.files) == ["conn", "dns"]
    assert len(records) == 53


def test_records_are_merged_in_time_order_keeping_each_file_order(tmp_path: Path) -> None:
    conn = zeekgen.make_conn_flows(300, seed=11, start_ts=0.0, span=100.0)
    conn[10], conn[11] = conn[11], conn[10]  # a file that is not perfectly sorted
    dns = [r | {"ts": float(t)} for t, r in zip((5, 50, 99.5), _dns_records(), strict=True)]
    zeekgen.write_conn_log(str(tmp_path / "conn.log"), conn, "json")
    zeekgen.write_log(str(tmp_path / "dns.log"), "dns", dns, "tsv")
    records, errors = read_path(tmp_path)
    assert errors == [] and len(records) == 303
    flow_uids = [ev["uid"] for _, ch, ev in records if ch == NEW_FLOW]
    assert flow_uids == [f["uid"] for f in conn]
    times = [ts for ts, _, _ in records]
    out_of_order = [i for i in range(1, len(times)) if times[i] < times[i - 1]]
    assert len(out_of_order) == 1  # only the swap inside conn.log itself
    assert [ts for ts, ch, _ in records if ch != NEW_FLOW] == [5.0, 50.0, 99.5]


def test_from_fd_on_a_directory(tmp_path: Path) -> None:
    folder = _small_folder(tmp_path)
    (folder / "pe.log").write_text('{"ts": 1.0}\n')
    expected, _ = read_path(folder)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    open_before = len(os.listdir("/proc/self/fd"))
    try:
        with ZeekInput.from_fd(fd, "sensor-1") as zin:
            records, errors = read(zin)
            assert errors == []
            assert records == expected
            assert sorted(f.name for f in zin.files) == ["sensor-1/conn.log", "sensor-1/dns.log"]
            assert zin.ignored == ["sensor-1/pe.log"]
            again, _ = read(zin)
            assert again == expected
            assert_accounted(zin.files)
        os.fstat(fd)  # the caller's descriptor is still open
        assert len(os.listdir("/proc/self/fd")) == open_before  # and nothing leaked
    finally:
        os.close(fd)


def test_from_fd_on_a_file(tmp_path: Path) -> None:
    folder = _small_folder(tmp_path)
    expected, _ = read_path(folder / "conn.log")
    fd = os.open(folder / "conn.log", os.O_RDONLY)
    try:
        os.lseek(fd, 100, os.SEEK_SET)  # wherever the sender left it, the whole file is read
        zin = ZeekInput.from_fd(fd, "conn.log")
        assert read(zin)[0] == expected
        assert read(zin)[0] == expected
        assert zin.files[0].name == "conn.log" and zin.files[0].parsed == 50
        zin.close()
        os.fstat(fd)
        with pytest.raises(InputError, match="closed"):
            read(zin)
    finally:
        os.close(fd)


def test_from_fd_on_a_pipe_is_refused() -> None:
    r, w = os.pipe()
    try:
        with pytest.raises(InputError, match="neither a directory nor a regular file"):
            ZeekInput.from_fd(r, "pipe")
        os.fstat(r)
    finally:
        os.close(r)
        os.close(w)


PCAP_HEADER = b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(200)


@pytest.mark.parametrize(
    ("files", "target", "message"),
    [
        ({}, "missing", "no such file"),
        ({}, ".", "no Zeek logs in this folder"),
        ({"pe.log": b'{"ts": 1}\n'}, ".", "found only"),
        ({"conn.log": b"a,b,c\n1,2,3\n"}, ".", "not a Zeek log"),
        ({"f": b"hello\n"}, "f", "not a Zeek log"),
        ({"f": PCAP_HEADER}, "f", "not a Zeek log"),
        ({"f.log": b"# title\nplain text\n"}, "f.log", "not a Zeek log"),
        ({"pe.log": b'{"ts": 1}\n'}, "pe.log", "'pe' \\(from its file name"),
        ({"conn.log.gz": b"\x1f\x8bnope"}, ".", "cannot read"),
    ],
)
def test_input_errors(tmp_path: Path, files: dict[str, bytes], target: str, message: str) -> None:
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        ZeekInput.from_path(str(tmp_path / target))
    assert str(tmp_path) in str(info.value)


def test_tsv_single_file_of_an_unread_type_is_named(tmp_path: Path) -> None:
    zeekgen.write_log(str(tmp_path / "foo.log"), "pe", [{"ts": 1.0, "id": "F"}], "tsv")
    with pytest.raises(InputError, match=r"'pe' \(from its #path header"):
        ZeekInput.from_path(str(tmp_path / "foo.log"))


# --- bad lines ---------------------------------------------------------------------


def test_bad_json_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    flows = zeekgen.make_conn_flows(10, seed=2)
    good = [json.dumps({k: v for k, v in f.items() if v is not None}) for f in flows]
    lines = [
        good[0], good[1], "{not json", good[2], "[1, 2]", "", good[3],
        json.dumps({"uid": "Cnots", "proto": "tcp"}),
        json.dumps({"ts": 5.0, "duration": "abc"}),
        json.dumps({"ts": 5.0, "id.orig_p": True}),
        '{"ts": 1.0, "uid": "Ctrunc", "id.orig_h": "10.0.0', good[4], *good[5:],
    ]  # fmt: skip
    (tmp_path / "conn.log").write_text("\n".join(lines) + "\n")
    zin = ZeekInput.from_path(str(tmp_path))
    records, errors = read(zin)
    name = str(tmp_path / "conn.log")
    assert [(e.file, e.line) for e in errors] == [(name, n) for n in (3, 5, 8, 9, 10, 11)]
    assert errors[0].reason.startswith("invalid JSON: ")
    assert errors[1].reason == "not a JSON object"
    assert errors[2].reason == "missing ts"
    assert errors[3].reason == "field 'duration': not a number: 'abc'"
    assert errors[4].reason == "field 'id.orig_p': not an integer: True"
    assert str(errors[0]) == f"{name}:3: {errors[0].reason}"
    assert [ev["uid"] for _, _, ev in records] == [f["uid"] for f in flows]
    stats = zin.files[0]
    assert (stats.lines, stats.parsed, stats.bad, stats.meta) == (17, 10, 6, 1)
    assert_accounted(zin.files)


def test_bad_tsv_lines_are_reported_and_skipped(tmp_path: Path) -> None:
    flows = zeekgen.make_conn_flows(12, seed=4)
    zeekgen.write_conn_log(str(tmp_path / "src.log"), flows, "tsv")
    lines = (tmp_path / "src.log").read_text().splitlines()
    fields = lines[6].split("\t")[1:]
    cells = lines[9].split("\t")
    bad_duration = cells.copy()
    bad_duration[fields.index("duration")] = "abc"
    bad_bool = cells.copy()
    bad_bool[fields.index("local_orig")] = "yes"
    bad_count = cells.copy()
    bad_count[fields.index("orig_pkts")] = "1.5"
    no_ts = cells.copy()
    no_ts[0] = "-"
    inserted = [
        "\t".join(cells[:-2]), "\t".join(bad_duration), "\t".join(bad_bool),
        "\t".join(bad_count), "\t".join(no_ts), "   ",
    ]  # fmt: skip
    text = lines[:10] + inserted + lines[10:]
    (tmp_path / "src.log").unlink()
    (tmp_path / "conn.log").write_text("\n".join(text) + "\n")
    zin = ZeekInput.from_path(str(tmp_path / "conn.log"))
    records, errors = read(zin)
    name = str(tmp_path / "conn.log")
    assert [str(e) for e in errors] == [
        f"{name}:11: expected 21 fields, got 19",
        f"{name}:12: field 'duration': not a number: 'abc'",
        f"{name}:13: field 'local_orig': not a bool (T/F): 'yes'",
        f"{name}:14: field 'orig_pkts': not an integer: '1.5'",
        f"{name}:15: missing ts",
    ]
    assert [ev["uid"] for _, _, ev in records] == [f["uid"] for f in flows]
    stats = zin.files[0]
    assert (stats.parsed, stats.bad, stats.meta, stats.lines) == (12, 5, 10, 27)
    assert_accounted(zin.files)


def test_tsv_data_before_fields_header(tmp_path: Path) -> None:
    (tmp_path / "conn.log").write_text(
        "#separator \\x09\n#fields\tts\tuid\n1.0\tCa\n#types\ttime\tstring\tcount\n2.0\tCb\n"
    )
    records, errors = read_path(tmp_path)
    # Without #types every field is a string (ts is still made a number); #types that
    # do not match #fields make the data lines under them bad.
    assert [ev["uid"] for _, _, ev in records] == ["Ca"]
    assert [(e.line, e.reason) for e in errors] == [(5, "header has 2 '#fields' but 3 '#types'")]


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    flows = zeekgen.make_conn_flows(3000, seed=5)
    zeekgen.write_conn_log(str(tmp_path / "full.gz"), flows, "json")
    data = (tmp_path / "full.gz").read_bytes()
    (tmp_path / "full.gz").unlink()
    (tmp_path / "conn.log.gz").write_bytes(data[: len(data) // 2])
    zin = ZeekInput.from_path(str(tmp_path))
    records, errors = read(zin)
    assert 0 < len(records) < 3000
    assert len(errors) >= 1 and "cannot read further" in errors[-1].reason
    assert_accounted(zin.files)


# --- real corpus -------------------------------------------------------------------


def _corpus(name: str) -> Path:
    if not DATASETS.is_dir():
        pytest.skip(f"corpus folder {DATASETS} is absent (only the project's own tests run)")
    path = DATASETS / name
    if not path.is_dir():
        pytest.skip(f"corpus entry {path} is absent")
    return path


def _count_lines(path: str) -> int:
    data = Path(path).read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _conn_sources(records: list[tuple[float, str, Event]]) -> set[str]:
    return {ev["saddr"] for _, ch, ev in records if ch == NEW_FLOW}


def _read_corpus(name: str) -> tuple[ZeekInput, list[tuple[float, str, Event]], list[LineError]]:
    zin = ZeekInput.from_path(str(_corpus(name)))
    records, errors = read(zin)
    # Every line of every file read is accounted for, against an independent count.
    assert sum(f.lines for f in zin.files) == sum(_count_lines(f.name) for f in zin.files)
    assert_accounted(zin.files)
    assert len(records) == sum(f.parsed for f in zin.files)
    return zin, records, errors


@pytest.mark.corpus
def test_corpus_json_folder_test9() -> None:
    zin, records, errors = _read_corpus("test9-mixed-zeek-dir")
    assert errors == []
    assert len(_conn_sources(records)) > 4
    assert {Path(p).name for p in zin.ignored} >= {"pe.log", "loaded_scripts.log"}
    assert {f.log_type for f in zin.files} >= {"conn", "dns", "http", "ssl", "arp", "dhcp", "x509"}


@pytest.mark.corpus
def test_corpus_tsv_folder_test10() -> None:
    zin, records, errors = _read_corpus("test10-mixed-zeek-dir")
    # One line of this notice.log is really malformed (a space where a tab belongs and
    # two fields missing: 23 of 26); it must be reported, not silently misread.
    assert [(Path(e.file).name, e.line, e.reason) for e in errors] == [
        ("notice.log", 21, "expected 26 fields, got 23")
    ]
    assert len(_conn_sources(records)) > 5
    dns = [ev for _, ch, ev in records if ch == LOG_CHANNELS["dns"]]
    assert any(len(ev["answers"]) > 1 and type(ev["TTLs"][0]) is float for ev in dns)
    assert {Path(p).name for p in zin.ignored} >= {"capture_loss.log", "reporter.log"}
    assert "x509" in {f.log_type for f in zin.files}


@pytest.mark.corpus
@pytest.mark.parametrize(
    "name",
    [
        "test13-malicious-dhcpscan-zeek-dir",
        "test14-malicious-zeek-dir",
        "test15-malicious-zeek-dir",
        "test16-malicious-zeek-dir",
    ],
)
def test_corpus_other_zeek_folders(name: str) -> None:
    zin, records, errors = _read_corpus(name)
    assert errors == []
    assert records and all(ev["saddr"] for _, _, ev in records)
    assert zin.ignored == []


def test_json_lines_are_read_as_json_loads_reads_them(tmp_path: Path) -> None:
    # The reader scans each line with json's C scanner and leaves anything but one value
    # followed by the line end to json.loads: the same records and the same errors.
    flows = zeekgen.make_conn_flows(6, seed=3)
    good = [json.dumps({k: v for k, v in f.items() if v is not None}) for f in flows]
    lines = ["  " + good[0], good[1] + " \t\r", good[2] + " x", good[3] + good[3],
             good[4] + "\x0c", "\t", good[5]]
    (tmp_path / "conn.log").write_text("\n".join(lines))  # the last line has no end
    records, errors = read_path(tmp_path)
    assert [ev["uid"] for _, _, ev in records] == [flows[i]["uid"] for i in (0, 1, 5)]
    expected = []
    for line in lines[2:5]:
        with pytest.raises(json.JSONDecodeError) as caught:
            json.loads(line)
        expected.append(f"invalid JSON: {caught.value.msg}")
    assert [(e.line, e.reason) for e in errors] == list(zip((3, 4, 5), expected, strict=True))


def test_a_single_log_offers_only_its_own_type(tmp_path: Path) -> None:
    from slipsd.ingest import input_info

    zeekgen.write_conn_log(str(tmp_path / "conn.log"), zeekgen.make_conn_flows(5, seed=1),
                           "json")
    alone = ZeekInput.from_path(str(tmp_path / "conn.log"))
    # Only a conn log: no module may take a missing DNS lookup as evidence.
    assert input_info(alone)["log_types"] == ["conn"]
    # A folder: Zeek writes a log for what it saw, so no http.log means no HTTP was seen.
    folder = ZeekInput.from_path(str(tmp_path))
    assert input_info(folder)["log_types"] == sorted(LOG_CHANNELS)
