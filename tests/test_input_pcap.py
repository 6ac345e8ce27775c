"""The pcap input: recognised by magic, metered into Zeek logs, read as the Zeek reader reads."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from slipsctl.cli import app
from slipsd.inputs import InputError, LineError, open_fd, open_path
from slipsd.inputs import pcap as pcap_input
from slipsd.inputs.detect import HEAD_BYTES

from conftest import Daemon
from pcap_capture import T0, Capture, client_hello, sample

FLOW_TYPES = {"ts": float, "uid": str, "saddr": str, "sport": int, "daddr": str, "dport": int,
              "proto": str, "service": str, "duration": float, "sbytes": int, "dbytes": int,
              "spkts": int, "dpkts": int, "state": str, "history": str}


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary-files folder of the test's own, to see what the input leaves behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def read_all(source: Any) -> tuple[list[tuple[float, str, dict[str, Any]]], list[LineError]]:
    errors: list[LineError] = []
    return list(source.records(errors.append)), errors


@pytest.mark.parametrize("fmt", ["pcap", "nano", "pcapng"])
def test_captures_are_recognised_by_magic(tmp_path: Path, fmt: str) -> None:
    path = sample().write(tmp_path / "capture.bin", fmt)
    head = path.read_bytes()[:HEAD_BYTES]
    assert pcap_input.sniff(head, "capture.bin")
    assert pcap_input.sniff(b"\xa1\xb2\xc3\xd4" + head[4:], "big-endian")
    assert not pcap_input.sniff(b'{"ts": 1.0, "uid": "C1"}\n', "conn.log")
    with open_path(str(path)) as source:
        assert isinstance(source, pcap_input.PcapInput)
        records, errors = read_all(source)
    assert errors == [] and len([r for r in records if r[1] == "new_flow"]) == 7


def test_events_are_those_of_zeek_logs(tmp_path: Path, private_tmp: Path) -> None:
    path = sample().write(tmp_path / "capture.pcap")
    source = open_path(str(path))
    records, errors = read_all(source)
    assert errors == []
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for _, channel, event in records:
        by_channel.setdefault(channel, []).append(event)
    assert {k: len(v) for k, v in by_channel.items()} == {
        "new_flow": 7, "new_dns": 2, "new_http": 2, "new_ssl": 1, "new_arp": 2}
    channels = {f"new_{t}" for t in source.log_types} | {"new_flow"}
    assert set(by_channel) <= channels and "ssh" in source.log_types
    for flow in by_channel["new_flow"]:
        assert {k: type(flow[k]) for k in FLOW_TYPES} == FLOW_TYPES
    syn = next(f for f in by_channel["new_flow"] if f["dport"] == 22)
    assert (syn["saddr"], syn["daddr"], syn["proto"], syn["state"], syn["spkts"]) == (
        "10.0.0.1", "10.0.0.3", "tcp", "S0", 2)
    assert [r[0] for r in records] == sorted(r[0] for r in records)
    arp = by_channel["new_arp"][0]
    assert (arp["saddr"], arp["daddr"], arp["operation"]) == ("10.0.0.1", "10.0.0.9", "request")
    names = [f.name for f in source.files]
    assert f"{path}[conn.log]" in names and f"{path}[arp.log]" in names
    for stats in source.files:
        assert stats.lines == stats.parsed + stats.bad + stats.meta
    assert source.count_lines() == sum(f.lines for f in source.files) == len(records)
    assert list(private_tmp.iterdir())  # the logs live there while the input is open
    source.close()
    assert list(private_tmp.iterdir()) == []


def test_descriptor_stays_the_callers(tmp_path: Path, private_tmp: Path) -> None:
    path = sample().write(tmp_path / "capture.pcap")
    fd = os.open(path, os.O_RDONLY)
    try:
        with open_fd(fd, "from-socket.pcap") as source:
            records, _ = read_all(source)
        os.fstat(fd)
    finally:
        os.close(fd)
    assert len(records) == 14 and list(private_tmp.iterdir()) == []


def test_a_capture_cut_short_reports_one_bad_line(tmp_path: Path) -> None:
    cap = Capture()
    for i in range(30):
        cap.tcp(T0 + i, "10.0.0.1", 41000 + i, "10.0.0.2", 80, "S")
    whole = cap.write(tmp_path / "whole.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) - 10])  # the last record loses its end
    with open_path(str(cut)) as source:
        records, errors = read_all(source)
        files = source.files
    assert len(records) == 29
    assert [(e.file, e.line) for e in errors] == [(str(cut), 30)]
    assert "capture cut short" in errors[0].reason
    assert (files[0].name, files[0].lines, files[0].bad) == (str(cut), 1, 1)
    assert sum(f.bad for f in files) == 1


def test_not_really_a_capture(tmp_path: Path, private_tmp: Path) -> None:
    fake = tmp_path / "fake.pcap"
    fake.write_bytes(b"\xd4\xc3\xb2\xa1" + b"garbage, not a pcap header")
    with pytest.raises(InputError, match=r"fake\.pcap"):
        open_path(str(fake))
    assert list(private_tmp.iterdir()) == []


def test_an_empty_capture_has_no_events(tmp_path: Path) -> None:
    empty = Capture().write(tmp_path / "empty.pcap")
    with open_path(str(empty)) as source:
        records, errors = read_all(source)
        assert [(f.log_type, f.lines) for f in source.files] == [("conn", 0)]
    assert records == [] and errors == []


def test_analyze_a_capture_end_to_end(make_daemon: Any, tmp_path: Path) -> None:
    cap = Capture()
    for host in range(1, 21):  # a SYN scan of 20 hosts on 445/tcp, one SYN each
        cap.tcp(T0 + host / 10, "192.168.1.66", 50000 + host, f"192.168.1.{100 + host}", 445, "S")
    cap.session(T0 + 5, "192.168.1.10", 40000, "192.168.1.1", 8080, [("c", b"x" * 300)])
    pcap = cap.write(tmp_path / "scan.pcap")
    daemon: Daemon = make_daemon()
    result = CliRunner().invoke(app, ["analyze", str(pcap), "--json", "--output",
                                      str(tmp_path / "out"), "--socket", str(daemon.socket)])
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)
    summary = run["summary"]
    assert summary["flows"] == 21 and summary["bad_lines"] == 0
    assert summary["evidence_by_type"].get("HORIZONTAL_PORT_SCAN") == 1
    assert "Traceback" not in daemon.log_text()


def test_malformed_application_messages_cost_nothing_but_themselves(tmp_path: Path) -> None:
    cap = Capture()
    c, s = "10.0.0.1", "10.0.0.2"
    loop = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"
    cap.udp(T0, c, 5000, s, 53, loop)  # a name compressed into itself
    cap.udp(T0 + 0.1, c, 5001, s, 53, b"\xff" * 7)  # shorter than a DNS header
    cap.udp(T0 + 0.2, c, 68, s, 67, b"not dhcp at all")
    cap.session(T0 + 1, c, 40000, s, 443, [("c", b"\x16\x03\x01\x00\x30\x01\x00"), ("s", b"\x16")])
    cap.session(T0 + 2, c, 40001, s, 80, [("c", b"GET \r\n\r\n"), ("s", b"HTTP/1.1 abc\r\n\r\n")])
    cap.session(T0 + 3, c, 40002, s, 22, [("s", b"SSH-"), ("c", b"\xff" * 40)])
    with open_path(str(cap.write(tmp_path / "bad.pcap"))) as source:
        records, errors = read_all(source)
        assert source.stats.parse_errors >= 5
    assert errors == [] and len([r for r in records if r[1] == "new_flow"]) == 6


def test_logs_are_sorted_beyond_what_memory_holds(tmp_path: Path) -> None:
    from slipsd.sensors._flowmeter_out import SortedLog

    log = SortedLog(tmp_path / "conn.log", limit=3)
    for ts in (5.0, 1.0, 4.0, 2.0, 9.0, 3.0, 7.0, 0.5):
        log.add({"ts": ts, "uid": f"C{ts}"})
    log.add({"ts": 1.0, "uid": "C1.0", "second": True})  # same key: after the first one
    log.close()
    rows = [json.loads(line) for line in (tmp_path / "conn.log").read_text().splitlines()]
    assert [r["ts"] for r in rows] == [0.5, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 9.0]
    assert "second" in rows[2] and "second" not in rows[1]
    assert [p.name for p in tmp_path.iterdir()] == ["conn.log"]  # the spilled runs are gone


def test_segments_longer_than_nfstream_hands_over(tmp_path: Path) -> None:
    # Captures taken with segmentation offload hold TCP segments far above the MTU;
    # NFStream passes only their first ~1.5 kB on, so what follows is lost, not waited for.
    cap = Capture()
    get = b"GET /big HTTP/1.1\r\nHost: h.example\r\nX-Pad: " + b"p" * 3000 + b"\r\n\r\n"
    cap.session(T0, "10.0.0.1", 40000, "10.0.0.2", 80,
                [("c", get), ("s", b"HTTP/1.1 204 No Content\r\n\r\n")])
    cap.session(T0 + 1, "10.0.0.1", 40001, "10.0.0.2", 443,
                [("c", client_hello("big.example", pad=2000))])
    with open_path(str(cap.write(tmp_path / "tso.pcap"))) as source:
        records, errors = read_all(source)
    events = {channel: event for _, channel, event in records}
    assert errors == []
    http, ssl = events["new_http"], events["new_ssl"]
    assert (http["host"], http["uri"], http["status_code"]) == ("h.example", "/big", 204)
    assert ssl["server_name"] == "big.example" and "ja3" not in ssl  # not the whole hello
