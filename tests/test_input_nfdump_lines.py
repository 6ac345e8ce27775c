"""nfdump input: the lines nfdump prints, parsed and paired without nfdump (the nfcapd files
read through nfdump are in test_input_nfdump.py)."""

from __future__ import annotations

from slipsd.inputs import FileStats, LineError
from slipsd.inputs._nfdump_flows import FIELDS
from slipsd.inputs._nfdump_pair import Totals, read_lines

from test_input_nfdump import C, Event


def record(start: str = "1700000000.125", td: str = "0.500", pr: str = "6",
           flg: str = "......S.", counts: tuple[int, int, int, int] = (1, 60, 0, 0),
           macs: tuple[str, str] = ("00:00:00:00:00:00", "00:00:00:00:00:00"),
           src: tuple[str, int] = (C, 40000), dst: tuple[str, int] = ("10.0.0.2", 80)) -> str:
    """One line as nfdump prints FORMAT, padding included."""
    return (f"{start}|{td:>16}|{pr:<5}|{src[0]:>39}|{src[1]:>6}|{dst[0]:>39}|{dst[1]:>6}|"
            f"{flg}|{counts[0]:>8}|{counts[1]:>8}|{counts[2]:>8}|{counts[3]:>8}|"
            f"{0:>6}|{0:>6}|{macs[0]}|{macs[1]}\n")


def read_text(lines: list[str]) -> tuple[list[Event], list[LineError], FileStats, Totals]:
    stats = FileStats("out.txt", "conn")
    errors: list[LineError] = []
    totals = Totals()
    events = [ev for _, _, ev in read_lines(lines, stats, errors.append, totals)]
    return events, errors, stats, totals


def test_text_lines_that_are_not_records() -> None:
    lines = [
        "Date first seen (raw)    Duration Proto ...\n",
        record(),
        "1700000001.000|0.000|6\n",
        record(start="1700000002.000", counts=(1, 60, 0, 0)).replace("|       1|", "|     one|"),
        record(start="1700000003.000", pr="XYZ"),
        record(start="1700000004.000", flg="..?...S."),
        "Summary: total flows: 5, total bytes: 300, total packets: 5\n",
        "Time window: 2023-11-14 22:13:20 - 2023-11-14 22:13:24\n",
        "Total flows processed: 5, passed: 5, Blocks skipped: 0, Bytes read: 400\n",
        "Sys: 0.0000s User: 0.0013s Wall: 0.0004s flows/second: 27430.0 Runtime: 0.0004s\n",
        "something nfdump never printed before\n",
        "\n",
    ]
    events, errors, stats, totals = read_text(lines)
    assert [ev["state"] for ev in events] == ["S0"]
    assert [str(e) for e in errors] == [
        f"out.txt:3: expected {len(FIELDS)} fields, got 3",
        "out.txt:4: field 'ipkt': not an integer: 'one'",
        "out.txt:5: field 'pr': unknown protocol: 'XYZ'",
        "out.txt:6: field 'flg': not TCP flags: '..?...S.'",
        "out.txt:11: not a flow record: 'something nfdump never printed before'",
    ]
    assert (stats.lines, stats.parsed, stats.bad, stats.meta) == (12, 1, 5, 6)
    assert totals.processed == 5


def test_biflow_records_and_mac_addresses() -> None:
    # Exporters of bidirectional flows (NSEL, IPFIX biflows) fill the reverse counters.
    macs = ("02:00:00:00:00:01", "02:00:00:00:00:02")
    events, errors, _, _ = read_text([record(flg="...AP.SF", counts=(5, 500, 4, 900), macs=macs)])
    assert errors == []
    (ev,) = events
    assert (ev["spkts"], ev["dpkts"], ev["orig_ip_bytes"], ev["resp_ip_bytes"]) == (5, 4, 500, 900)
    assert (ev["sbytes"], ev["dbytes"], ev["state"]) == (300, 740, "SF")
    assert (ev["smac"], ev["dmac"]) == macs


def test_names_of_protocols_are_accepted_too() -> None:
    events, errors, _, _ = read_text([record(pr="UDP", flg="........"),
                                      record(start="1700000001.000", pr="47", flg="........")])
    assert errors == []
    assert [(ev["proto"], ev["state"]) for ev in events] == [
        ("udp", "S0"), ("unknown_transport", "OTH")]


def test_join_waits_only_for_the_window() -> None:
    forward = record()
    reply = record(start="1700000000.300", flg="...A.R..", counts=(1, 40, 0, 0),
                   src=("10.0.0.2", 80), dst=(C, 40000))
    events, _, _, _ = read_text([forward, reply])
    assert [(ev["state"], ev["sport"], ev["dport"]) for ev in events] == [("REJ", 40000, 80)]
    stats = FileStats("out.txt", "conn")
    alone = list(read_lines([forward, reply], stats, lambda e: None, Totals(), window_ms=100))
    assert [ev["state"] for _, _, ev in alone] == ["S0", "RSTRH"]
