"""The scans module on real Zeek logs from ../shared/datasets (skipped when absent)."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.corpus


def scan_evidence(corpus: Any, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    result = corpus(name)
    return result.run, result.of("scans")


def test_dhcp_scan_test13(corpus: Any) -> None:
    # One client (192.168.1.30, 24:4b:fe:1c:48:a4) requests ten different addresses.
    _, found = scan_evidence(corpus, "test13-malicious-dhcpscan-zeek-dir")
    dhcp = [e for e in found if e["type"] == "DHCP_SCAN"]
    assert len(dhcp) == 1
    assert dhcp[0]["attacker"] == "192.168.1.30" and dhcp[0]["victim"] == "192.168.1.1"
    assert "24:4b:fe:1c:48:a4" in dhcp[0]["description"]
    assert len(found) <= 3


def test_zeek_notices_test10(corpus: Any) -> None:
    # notice.log: twelve Scan::Address_Scan notices about 147.32.83.156 (ports 23,
    # 2323, 8080) make one evidence; its SSH::Password_Guessing line is the damaged
    # line 21, reported as a bad line, so it makes none.
    run, found = scan_evidence(corpus, "test10-mixed-zeek-dir")
    assert run["summary"]["bad_lines"] == 1
    notices = [e for e in found if e["type"] == "ZEEK_NOTICE_SCAN"]
    assert [(e["attacker"], e["victim"]) for e in notices] == [("147.32.83.156", "")]
    assert "Scan::Address_Scan" in notices[0]["description"]
    # conn.log also holds S0 probes of 1337/tcp from 192.0.2.10 to 10.0.0.1-10 and an
    # echo sweep from 192.0.2.33 over 10 hosts; 192.0.2.44's flows carry data.
    horizontal = [e for e in found if e["type"] == "HORIZONTAL_PORT_SCAN"]
    assert [e["attacker"] for e in horizontal] == ["192.0.2.10"]
    assert "10 hosts on port 1337/tcp" in horizontal[0]["description"]
    icmp = [e for e in found if e["type"] == "ICMP_SCAN"]
    assert [(e["attacker"], e["victim"]) for e in icmp] == [("192.0.2.33", "")]
    assert len(found) == 3


def test_no_storm_test9(corpus: Any) -> None:
    # Benign capture plus notice.log lines of ICMP address, timestamp and address-mask
    # scans by 192.168.1.15 (18 notices): one evidence per kind of notice.
    _, found = scan_evidence(corpus, "test9-mixed-zeek-dir")
    notices = sorted(e["description"].split()[2] for e in found
                     if e["type"] == "ZEEK_NOTICE_SCAN")
    assert notices == ["ICMP::AddressMaskScan", "ICMP::ICMPAddressScan", "ICMP::TimestampScan"]
    assert all(e["attacker"] == "192.168.1.15" for e in found if e["type"] == "ZEEK_NOTICE_SCAN")
    assert len(found) <= 10
