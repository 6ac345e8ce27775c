"""The Argus binetflow reader on generated files: fields, states, header variants, bad lines."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from slipsd.events import NEW_FLOW
from slipsd.inputs import InputError, LineError, argus, open_fd, open_path
from slipsd.inputs._flowfile import time_sorted
from slipsd.inputs._flowstate import ACK, FIN, PSH, RST, SYN, tcp_history, tcp_state
from slipsd.inputs.argus import ArgusInput

HEADER = ("StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,sTos,dTos,TotPkts,"
          "TotBytes,SrcBytes,SrcPkts,Label")
T0 = "2013/08/15 09:26:51.123456"
EPOCH0 = datetime(2013, 8, 15, 9, 26, 51, 123456, tzinfo=UTC).timestamp()

Event = dict[str, Any]


def write(path: Path, lines: list[str], header: str = HEADER, sep: str = ",") -> Path:
    rows = [header.replace(",", sep)] + [line.replace(",", sep) for line in lines]
    path.write_text("\n".join(rows) + "\n")
    return path


def read(path: Path) -> tuple[list[Event], list[str], ArgusInput]:
    source = argus.from_path(str(path))
    errors: list[LineError] = []
    records = list(source.records(errors.append))
    assert all(ch == NEW_FLOW and ts == ev["ts"] for ts, ch, ev in records)
    stats = source.files[0]
    assert stats.lines == stats.parsed + stats.bad + stats.meta
    return [ev for _, _, ev in records], [str(e) for e in errors], source


def one(tmp_path: Path, line: str, header: str = HEADER) -> Event:
    events, errors, _ = read(write(tmp_path / "one.binetflow", [line], header))
    assert errors == [] and len(events) == 1
    return events[0]


def flow(state: str, tot: tuple[int, int] = (4, 400), src: tuple[int, int] = (2, 150),
         proto: str = "tcp", ports: tuple[str, str] = ("40000", "443"),
         direction: str = "   ->") -> str:
    return (f"{T0},1.5,{proto},10.0.0.1,{ports[0]},{direction},192.0.2.7,{ports[1]},{state},"
            f"0,0,{tot[0]},{tot[1]},{src[1]},{src[0]},flow=Background")


def test_a_full_line_becomes_a_zeek_like_conn_event(tmp_path: Path) -> None:
    ev = one(tmp_path, flow("FSPA_FSPA"))
    assert ev["ts"] == pytest.approx(EPOCH0, abs=1e-6) and type(ev["ts"]) is float
    assert ev["uid"].startswith("A") and len(ev["uid"]) == 17
    assert (ev["saddr"], ev["sport"], ev["daddr"], ev["dport"]) == ("10.0.0.1", 40000,
                                                                    "192.0.2.7", 443)
    assert (ev["proto"], ev["service"], ev["duration"]) == ("tcp", "", 1.5)
    assert (ev["sbytes"], ev["dbytes"], ev["spkts"], ev["dpkts"]) == (150, 250, 2, 2)
    assert (ev["orig_ip_bytes"], ev["resp_ip_bytes"]) == (150, 250)
    assert (ev["state"], ev["history"]) == ("SF", "ShADadFf")
    assert ev["label"] == "flow=Background"
    for key in ("sport", "dport", "sbytes", "dbytes", "spkts", "dpkts"):
        assert type(ev[key]) is int


@pytest.mark.parametrize(("state", "tot", "src", "expected"), [
    ("S_", (1, 60), (1, 60), ("S0", "S")),
    ("S_RA", (2, 120), (1, 60), ("REJ", "Sr")),
    ("S_R", (2, 120), (1, 60), ("REJ", "Sr")),
    ("FSPA_FSPA", (10, 2000), (5, 700), ("SF", "ShADadFf")),
    ("SPA_SPA", (4, 400), (2, 150), ("S1", "ShADad")),
    ("SR_SA", (3, 180), (2, 120), ("RSTO", "ShR")),
    ("SRPA_", (1, 194), (1, 194), ("RSTOS0", "SADR")),
    ("SPA_SRPA", (4, 400), (2, 150), ("RSTR", "ShADadr")),
    ("FSPA_SPA", (4, 400), (2, 150), ("S2", "ShADadF")),
    ("SPA_FSPA", (4, 400), (2, 150), ("S3", "ShADadf")),
    ("PA_PA", (4, 400), (2, 150), ("OTH", "ADad")),
    ("FSA_FSA", (6, 360), (3, 180), ("SF", "ShAaFf")),
    ("S_SA", (2, 120), (1, 60), ("OTH", "Sh")),
])  # fmt: skip
def test_tcp_flag_pairs(tmp_path: Path, state: str, tot: tuple[int, int],
                        src: tuple[int, int], expected: tuple[str, str]) -> None:
    ev = one(tmp_path, flow(state, tot, src))
    assert (ev["state"], ev["history"]) == expected


def test_tcp_payload_is_zero_for_a_side_without_psh(tmp_path: Path) -> None:
    # Zeek's orig_bytes are payload: a SYN scan answered by SYN-ACK carries none,
    # although Argus counts 120 and 60 bytes of headers.
    ev = one(tmp_path, flow("SR_SA", (3, 180), (2, 120)))
    assert (ev["sbytes"], ev["dbytes"]) == (0, 0)
    assert (ev["orig_ip_bytes"], ev["resp_ip_bytes"]) == (120, 60)
    ev = one(tmp_path, flow("SPA_SA", (3, 300), (2, 240)))
    assert (ev["sbytes"], ev["dbytes"]) == (240, 0)


@pytest.mark.parametrize(("state", "direction", "tot", "src", "expected"), [
    ("REQ", "   ->", (1, 60), (1, 60), ("S0", "S")),
    ("INT", "   ->", (1, 60), (1, 60), ("S0", "S")),
    ("CON", "  <?>", (35, 3766), (20, 1224), ("OTH", "ADad")),
    ("CON", "   ->", (35, 3766), (20, 1224), ("S1", "ShADad")),
    ("CLO", "   ->", (10, 1000), (5, 500), ("SF", "ShADadFf")),
    ("RST", "   ->", (2, 120), (1, 60), ("REJ", "Sr")),
    ("RST", "   ->", (1, 60), (1, 60), ("RSTOS0", "SR")),
    ("RST", "   ->", (10, 1000), (5, 500), ("RSTR", "ShADadr")),
    ("ACC", "   ->", (2, 120), (1, 60), ("S1", "ShA")),
])  # fmt: skip
def test_tcp_named_states(tmp_path: Path, state: str, direction: str, tot: tuple[int, int],
                          src: tuple[int, int], expected: tuple[str, str]) -> None:
    ev = one(tmp_path, flow(state, tot, src, direction=direction))
    assert (ev["state"], ev["history"]) == expected


def test_udp_icmp_and_other_protocols(tmp_path: Path) -> None:
    ev = one(tmp_path, flow("CON", (2, 142), (1, 63), "udp", ("48427", "53"), "  <->"))
    assert (ev["state"], ev["history"], ev["sbytes"], ev["dbytes"]) == ("SF", "Dd", 63, 79)
    ev = one(tmp_path, flow("INT", (3, 1770), (3, 1770), "udp", ("67", "68")))
    assert (ev["state"], ev["history"], ev["dbytes"], ev["dpkts"]) == ("S0", "D", 0, 0)
    # Packed ICMP "ports": code in the high byte; the other "port" is the echo id.
    ev = one(tmp_path, flow("URP", (1, 90), (1, 90), "icmp", ("0x0303", "0xdaac")))
    assert (ev["proto"], ev["sport"], ev["dport"], ev["state"]) == ("icmp", 3, 3, "OTH")
    ev = one(tmp_path, flow("URF", (1, 90), (1, 90), "icmp", ("0x0403", "0x0000")))
    assert (ev["sport"], ev["dport"]) == (3, 4)
    ev = one(tmp_path, flow("ECO", (2, 220), (1, 110), "icmp", ("0x0008", "0x0f72")))
    assert (ev["sport"], ev["dport"], ev["history"]) == (8, 0, "")
    ev = one(tmp_path, flow("URP", (2, 200), (2, 200), "icmp", ("0x03", "0x03")))
    assert (ev["sport"], ev["dport"]) == (3, 3)
    ev = one(tmp_path, flow("NNS", (1, 78), (1, 78), "ipv6-icmp", ("135", "0")))
    assert (ev["proto"], ev["sport"], ev["dport"]) == ("icmp", 135, 0)
    ev = one(tmp_path, flow("INT", (7, 400), (7, 400), "igmp", ("", "")))
    assert (ev["proto"], ev["sport"], ev["dport"], ev["state"]) == ("igmp", 0, 0, "OTH")


def test_ports_hex_empty_and_ipv6(tmp_path: Path) -> None:
    line = (f"{T0},0.1,tcp,2001:db8::1,0x0050,   ->,2001:db8::2,,S_,0,0,1,60,60,1,")
    ev = one(tmp_path, line)
    assert (ev["saddr"], ev["sport"], ev["daddr"], ev["dport"]) == ("2001:db8::1", 80,
                                                                    "2001:db8::2", 0)
    assert ev["label"] == ""


@pytest.mark.parametrize(("text", "expected"), [
    ("2013/08/15 09:26:51.123456", EPOCH0),
    ("2013-08-15 09:26:51.123456", EPOCH0),
    ("2013/08/15 09:26:51", EPOCH0 - 0.123456),
    ("1376558811.123456", EPOCH0),
])  # fmt: skip
def test_time_formats_are_utc(tmp_path: Path, text: str, expected: float) -> None:
    ev = one(tmp_path, flow("S_", (1, 60), (1, 60)).replace(T0, text))
    assert ev["ts"] == pytest.approx(expected, abs=1e-6)


def test_header_variants(tmp_path: Path) -> None:
    # Other columns, other order, tab-separated, explicit Dst counters, payload columns,
    # LastTime instead of Dur, and a label holding the separator.
    header = ("Proto\tStartTime\tLastTime\tSrcAddr\tDstAddr\tSport\tDport\tState\tSrcPkts\t"
              "DstPkts\tSrcBytes\tDstBytes\tSAppBytes\tDAppBytes\tSrcMac\tLabel")
    line = ("tcp\t2013/08/15 09:26:51.0\t2013/08/15 09:27:01.5\t10.0.0.1\t10.0.0.2\t1\t2\t"
            "FSPA_FSPA\t3\t4\t300\t400\t100\t200\taa:bb:cc:dd:ee:ff\tfrom\tbotnet")
    ev = one(tmp_path, line, header)
    assert ev["duration"] == pytest.approx(10.5)
    assert (ev["sbytes"], ev["dbytes"], ev["spkts"], ev["dpkts"]) == (100, 200, 3, 4)
    assert (ev["orig_ip_bytes"], ev["resp_ip_bytes"]) == (300, 400)
    assert ev["smac"] == "aa:bb:cc:dd:ee:ff" and "dmac" not in ev
    assert ev["label"] == "from\tbotnet"
    # Without SrcPkts the packets are shared in proportion to the bytes.
    header = "StartTime,Dur,Proto,SrcAddr,Sport,Dir,DstAddr,Dport,State,TotPkts,TotBytes,SrcBytes"
    ev = one(tmp_path, f"{T0},1,tcp,10.0.0.1,1,   ->,10.0.0.2,2,SPA_SPA,10,1000,250", header)
    assert (ev["spkts"], ev["dpkts"], ev["sbytes"], ev["dbytes"]) == (2, 8, 250, 750)
    ev = one(tmp_path, f"{T0},1,udp,10.0.0.1,1,   ->,10.0.0.2,2,INT,10,1000,1000", header)
    assert (ev["spkts"], ev["dpkts"]) == (10, 0)


def test_tab_file_and_meta_lines(tmp_path: Path) -> None:
    lines = [
        "2018/05/10 10:52:47.283479,0.045010,man,0,0,,0,0,STA,,,0,0,0,0,",
        flow("S_", (1, 60), (1, 60)),
        "",
        f"{T0},0,llc,00:00:00:00:00:00,0,   ->,00:00:00:00:00:00,0,INT,,,1,60,60,1,",
        f"{T0},3554.2,arp,10.0.2.15,,  who,10.0.2.2,,CON,,,22,924,462,11,",
        HEADER,  # ra's header again, as when two outputs are concatenated
        flow("S_RA", (2, 120), (1, 60)),
    ]
    events, errors, source = read(write(tmp_path / "t.binetflow", lines, sep="\t"))
    assert errors == []
    assert [ev["state"] for ev in events] == ["S0", "REJ"]
    stats = source.files[0]
    assert (stats.lines, stats.parsed, stats.bad, stats.meta) == (8, 2, 0, 6)
    assert stats.log_type == "binetflow"
    assert source.count_lines() == 8


def test_bad_lines_are_reported_with_their_place(tmp_path: Path) -> None:
    good = flow("S_", (1, 60), (1, 60))
    lines = [
        good,
        good.replace(T0, "09:26:51.123456"),
        good.replace(T0, "2013/13/45 09:26:51"),
        good.replace(",40000,", ",http,"),
        good.replace(",40000,", ",70000,"),
        good.replace("10.0.0.1", "10.0.0.300"),
        good.replace("   ->", " get_message  ->"),
        good.replace(",S_,", ",SX_,"),
        good.replace(",1,60,60,1,", ",1,60,61,1,"),
        good.replace(",1.5,", ",-1,"),
        good.replace(",1,60,60,1,", ",1,sixty,60,1,"),
        good.replace(",1.5,", ",1.5s,"),
        "2013/08/15 09:26:51,1,tcp",
        good,
    ]
    path = write(tmp_path / "bad.binetflow", lines)
    events, errors, source = read(path)
    assert len(events) == 2
    name = str(path)
    assert errors == [
        f"{name}:3: time '09:26:51.123456' has no date (print dates or epoch seconds with "
        "ra, e.g. ra -u)",
        f"{name}:4: StartTime '2013/13/45 09:26:51': not a date",
        f"{name}:5: Sport 'http' is not a port number",
        f"{name}:6: Sport '70000' is not a port number",
        f"{name}:7: SrcAddr '10.0.0.300' is not an IP address",
        f"{name}:8: Dir ' get_message  ->' is not an Argus direction",
        f"{name}:9: State 'SX_': not TCP flags",
        f"{name}:10: TotBytes 60 is less than SrcBytes 61",
        f"{name}:11: negative or invalid duration -1.0",
        f"{name}:12: TotBytes 'sixty' is not a count",
        f"{name}:13: Dur '1.5s' is not a number",
        f"{name}:14: expected 16 fields, got 3",
    ]
    stats = source.files[0]
    assert (stats.lines, stats.parsed, stats.bad, stats.meta) == (15, 2, 12, 1)


def test_records_come_out_in_time_order(tmp_path: Path) -> None:
    lines = [flow("S_", (1, 60), (1, 60)).replace(T0, f"2013/08/15 09:26:{s:02d}.0")
             for s in (30, 10, 20, 10, 5)]
    events, _, _ = read(write(tmp_path / "o.binetflow", lines))
    assert [int(ev["ts"]) % 60 for ev in events] == [5, 10, 10, 20, 30]
    uids = [ev["uid"] for ev in events]
    assert len(set(uids)) == 5  # also the two identical lines at :10
    again, _, _ = read(tmp_path / "o.binetflow")
    assert [ev["uid"] for ev in again] == uids


def test_time_sorting_spills_beyond_its_run_size() -> None:
    records = [(float(t % 7), "c", {"n": n}) for n, t in enumerate(range(50, 0, -1))]
    out = list(time_sorted(records, run_size=6))
    assert [ts for ts, _, _ in out] == sorted(ts for ts, _, _ in records)
    # Equal times keep their input order, across spilled runs too.
    for ts in {ts for ts, _, _ in out}:
        same = [ev["n"] for t, _, ev in out if t == ts]
        assert same == sorted(same)


def test_state_function_follows_zeek_precedence() -> None:
    assert tcp_state(SYN | RST, 0) == "RSTOS0"
    assert tcp_state(SYN | ACK | PSH | RST, SYN | ACK | PSH | RST) == "RSTR"
    assert tcp_state(ACK | PSH, RST) == "RSTR"
    assert tcp_state(ACK, RST) == "RSTRH"
    assert tcp_state(ACK | FIN, 0) == "SH"
    assert tcp_state(ACK, ACK | FIN) == "SHR"
    assert tcp_state(0, 0) == "OTH" and tcp_history(0, 0) == ""


def test_sniff_and_dispatch(tmp_path: Path) -> None:
    assert argus.sniff(HEADER.encode() + b"\n", "x")
    assert argus.sniff(b"\xef\xbb\xbf\n" + HEADER.replace(",", "\t").encode() + b"\n", "x")
    assert argus.sniff(gzip.compress(HEADER.encode() + b"\n" + b"x" * 5000)[:4096], "x")
    assert not argus.sniff(b"#separator \\x09\n#fields\tts\n", "x")
    assert not argus.sniff(b'{"ts": 1, "uid": "C1"}\n', "x")
    assert not argus.sniff(b"StartTime,Dur,Proto\n", "x")
    path = write(tmp_path / "capture.txt", [flow("S_", (1, 60), (1, 60))])
    source = open_path(str(path))
    assert isinstance(source, ArgusInput) and source.log_types == {"conn"}
    packed = tmp_path / "capture.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    source = open_path(str(packed))
    errors: list[LineError] = []
    assert isinstance(source, ArgusInput) and len(list(source.records(errors.append))) == 1
    assert errors == [] and source.count_lines() == 2


def test_from_fd_keeps_the_callers_descriptor(tmp_path: Path) -> None:
    path = write(tmp_path / "f.binetflow", [flow("S_", (1, 60), (1, 60))] * 3)
    fd = os.open(path, os.O_RDONLY)
    try:
        source = open_fd(fd, "sent-by-client")
        assert isinstance(source, ArgusInput) and source.name == "sent-by-client"
        first = list(source.records(lambda e: None))
        assert len(first) == 3 and len(list(source.records(lambda e: None))) == 3
        source.close()
        os.fstat(fd)  # still open
        with pytest.raises(InputError, match="closed"):
            source.records(lambda e: None)
    finally:
        os.close(fd)


def test_unreadable_headers_are_input_errors(tmp_path: Path) -> None:
    path = tmp_path / "nohead.binetflow"
    path.write_text("StartTime,SrcAddr,DstAddr,Dur\n" + f"{T0},10.0.0.1,10.0.0.2,1\n")
    with pytest.raises(InputError, match="lacks column"):
        argus.from_path(str(path))
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(InputError, match="not an Argus binetflow file"):
        argus.from_path(str(other))
