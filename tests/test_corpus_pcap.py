"""Real captures (../shared/datasets) through the flowmeter and a real slipsd, if present."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slipsd.sensors.flowmeter import write_zeek_logs

from conftest import dataset

pytestmark = pytest.mark.corpus


@pytest.mark.parametrize(("name", "flows"), [
    ("test7-malicious.pcap", (300, 360)),  # "about 330 flows, many hosts (mDNS, IPv6, ...)"
    ("test8-malicious.pcap", (1, 10)),  # almost only ARP
    ("test12-icmp-portscan.pcap", (18, 18)),  # one echo flow per host probed
])
def test_every_line_accounted_for(corpus: Any, name: str, flows: tuple[int, int]) -> None:
    summary = corpus(name).summary
    assert summary["bad_lines"] == 0 and summary["input_errors"] == []
    assert flows[0] <= summary["flows"] <= flows[1]
    files = summary["files"]
    for stats in files:
        assert stats["name"].startswith(str(dataset(name)) + "[")
        assert stats["lines"] == stats["parsed"] + stats["bad"] + stats["meta"], stats["name"]
    assert summary["lines"] == sum(f["lines"] for f in files)
    assert summary["events"] == sum(f["parsed"] for f in files)
    assert "Traceback" not in corpus(name).log


def test_test7_application_logs(corpus: Any) -> None:
    files = {f["log_type"]: f["lines"] for f in corpus("test7-malicious.pcap").summary["files"]}
    # DNS and mDNS with their answers, DHCP exchanges, two SSH sessions, ARP.
    assert files["dns"] > 100 and files["dhcp"] >= 5 and files["ssh"] == 2 and files["arp"] > 20


def test_test7_scans_and_login(corpus: Any) -> None:
    # 192.168.2.16 sweeps the internet for telnet and web proxies (SYNs without answer).
    result = corpus("test7-malicious.pcap")
    ports = {e["description"].split(" on port ")[1].split(" ")[0]
             for e in result.of("scans") if e["type"] == "HORIZONTAL_PORT_SCAN"}
    assert {"23/tcp", "2323/tcp", "8080/tcp"} <= ports
    assert all(e["attacker"] == "192.168.2.16" for e in result.of("scans"))


def test_arp_scan_test8(corpus: Any) -> None:
    found = [e for e in corpus("test8-malicious.pcap").of("arp") if e["type"] == "ARP_SCAN"]
    assert found and {e["attacker"] for e in found} == {"192.168.1.247"}


def test_icmp_scan_test12(corpus: Any) -> None:
    found = corpus("test12-icmp-portscan.pcap").of("scans")
    assert [(e["type"], e["attacker"]) for e in found] == [("ICMP_SCAN", "192.168.1.109")]
    assert "echo requests (type 8)" in found[0]["description"]


def test_same_capture_same_logs(tmp_path: Path) -> None:
    capture = str(dataset("test7-malicious.pcap"))
    write_zeek_logs(capture, tmp_path / "a")
    write_zeek_logs(capture, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "conn.log" in names and names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
