"""The nfdump reader on a real nfcapd file from ../shared/datasets (skipped when absent)."""

from __future__ import annotations

import shutil
from collections import Counter
from typing import Any

import pytest

from slipsd.inputs import LineError
from slipsd.inputs import nfdump as nf

from conftest import dataset

pytestmark = [
    pytest.mark.corpus,
    pytest.mark.skipif(shutil.which("nfdump") is None,
                       reason="nfdump is not installed (make installs the Debian package)"),
]

NAME = "test1-malicious.nfdump"
# nfdump -I: 4593 flows. 147.32.80.119 opens 2305 connections to 147.32.82.62:902
# from new ports; 2184 SYNs have their RST+ACK record, 121 have none and 80 RST+ACK
# records have no SYN. The rest: 3 SSH sessions to 147.32.82.62:22, 9 DNS exchanges.
RECORDS = 4593
EVENTS = 2398


def test_nfdump_file_every_record_accounted() -> None:
    errors: list[LineError] = []
    with nf.from_path(str(dataset(NAME))) as nfin:
        assert nfin.count_lines() == RECORDS
        events = [ev for _, _, ev in nfin.records(errors.append)]
        (stats,) = nfin.files
    assert errors == []
    # The header line and four statistics lines are nfdump's own.
    assert (stats.lines, stats.parsed, stats.bad, stats.meta) == (RECORDS + 5, RECORDS, 0, 5)
    assert len(events) == EVENTS
    assert [ev["ts"] for ev in events] == sorted(ev["ts"] for ev in events)
    assert len({ev["uid"] for ev in events}) == EVENTS
    states = Counter((ev["proto"], ev["state"]) for ev in events)
    assert states == {("tcp", "REJ"): 2184, ("tcp", "S0"): 121, ("tcp", "RSTRH"): 80,
                      ("udp", "SF"): 8, ("udp", "S0"): 1, ("tcp", "SF"): 2,
                      ("tcp", "SHR"): 1, ("tcp", "OTH"): 1}
    # Lone replies are turned around: no flow starts at the probed port.
    probes = [ev for ev in events if 902 in (ev["sport"], ev["dport"])]
    assert {(ev["saddr"], ev["daddr"], ev["dport"]) for ev in probes} == {
        ("147.32.80.119", "147.32.82.62", 902)}
    ssh = [ev for ev in events if ev["state"] == "SF" and ev["dport"] == 22]
    assert [(ev["saddr"], ev["spkts"], ev["dpkts"], ev["orig_ip_bytes"], ev["resp_ip_bytes"])
            for ev in ssh] == [("50.62.139.155", 12, 12, 1216, 2349),
                               ("50.62.139.155", 12, 12, 1168, 2349)]
    assert ssh[0]["ts"] == 1515771478.713 and ssh[0]["duration"] == 1.675


def test_nfdump_corpus_through_slipsd(corpus: Any) -> None:
    result = corpus(NAME)
    summary = result.summary
    assert summary["bad_lines"] == 0 and summary["input_errors"] == []
    (stats,) = summary["files"]
    assert stats["lines"] == stats["parsed"] + stats["bad"] + stats["meta"]
    assert stats["parsed"] == RECORDS and summary["lines"] == RECORDS + 5
    assert summary["flows"] == summary["events"] == EVENTS
    assert "Traceback" not in result.log
    # 2264 refusals of 147.32.80.119 by 147.32.82.62:902/tcp: levels 5, 50 and 500.
    found = result.evidence
    retries = sorted((e for e in found if e["type"] == "MULTIPLE_RECONNECTION_ATTEMPTS"),
                     key=lambda e: len(e["description"]))
    assert [(e["attacker"], e["victim"]) for e in retries] == [
        ("147.32.80.119", "147.32.82.62")] * 3
    assert [e["description"].split(" was rejected ")[1] for e in retries] == [
        f"{n} times connecting to 147.32.82.62:902/tcp in this window" for n in (5, 50, 500)]
    unknown = [e for e in found if e["type"] == "UNKNOWN_PORT"]
    assert [(e["attacker"], e["victim"], e["threat_level"]) for e in unknown] == [
        ("147.32.80.119", "147.32.82.62", "low")]
    assert "902/tcp" in unknown[0]["description"]
    # The refusals, read one-way, would make the server scan its client's ports.
    assert not result.of("scans")
    assert all(e["attacker"] == "147.32.80.119" for e in found)
    assert len(found) == 4
