"""A real Suricata eve.json from ../shared/datasets through a real slipsd (skipped when absent).

test6 is a honeypot (192.168.1.129) on a home network, probed from the internet
for a day: 5000 lines of flow (3512), alert (745), dns (680), http (56),
fileinfo (3), anomaly (3) and tls (1) events.
"""

from __future__ import annotations

from typing import Any

import pytest

from conftest import dataset

pytestmark = pytest.mark.corpus

NAME = "test6-malicious.suricata.json"
HONEYPOT = "192.168.1.129"


def test_every_line_is_accounted_for(corpus: Any) -> None:
    path = dataset(NAME)
    result = corpus(NAME)
    summary = result.summary
    assert summary["bad_lines"] == 0 and summary["input_errors"] == []
    [stats] = summary["files"]
    assert stats["log_type"] == "eve"
    assert stats["lines"] == len(path.read_bytes().splitlines()) == summary["lines"] == 5000
    assert stats["lines"] == stats["parsed"] + stats["bad"] + stats["meta"]
    # Records: 3512 flows, 340 DNS transactions (680 lines: each query joined with
    # its answer), 56 http, 3 fileinfo, 1 tls. Meta: 745 alerts, 3 anomalies and
    # the 340 answer lines merged into their queries.
    assert summary["flows"] == 3512
    assert stats["parsed"] == summary["events"] == 3512 + 340 + 56 + 3 + 1
    assert stats["meta"] == 745 + 3 + 340
    assert "Traceback" not in result.log


def test_connections_to_unknown_ports(corpus: Any) -> None:
    # Internet scanners try ports of no well-known service on the honeypot, which
    # refuses them (REJ): failed attempts, reported at low threat level.
    unknown = [e for e in corpus(NAME).of("flows") if e["type"] == "UNKNOWN_PORT"]
    assert len(unknown) > 100
    assert {e["victim"] for e in unknown} == {HONEYPOT}
    assert any(":3390/tcp" in e["description"] and "(state REJ)" in e["description"]
               for e in unknown)


def test_vertical_port_scans(corpus: Any) -> None:
    vertical = [e for e in corpus(NAME).of("scans") if e["type"] == "VERTICAL_PORT_SCAN"]
    by_attacker = {e["attacker"] for e in vertical}
    assert {e["victim"] for e in vertical} == {HONEYPOT}
    # 193.46.255.92 probes many TCP ports of the honeypot, all refused.
    assert "193.46.255.92" in by_attacker
    assert any("/tcp" in e["description"] for e in vertical if e["attacker"] == "193.46.255.92")
    # 192.168.1.132 (a UPnP device on the same LAN) sends SSDP answers from 1900/udp
    # to many ports of the honeypot that never reply: one-way UDP, counted as a scan
    # as it would be from Zeek's conn.log.
    assert "192.168.1.132" in by_attacker
    assert by_attacker == {"193.46.255.92", "192.168.1.132"}


def test_private_address_contacts(corpus: Any) -> None:
    # Every private-to-private contact in this capture stays inside 192.168.1.0/24
    # (the honeypot with its gateway 192.168.1.1 for DNS, and 192.168.1.132's SSDP
    # answers), so PRIVATE_IP_OUTSIDE_LOCALNET has nothing to report; the private
    # contact the data supports is 192.168.1.132's scan of 192.168.1.129 above.
    result = corpus(NAME)
    assert not [e for e in result.evidence if e["type"] == "PRIVATE_IP_OUTSIDE_LOCALNET"]
    local = [e for e in result.of("scans")
             if e["attacker"] == "192.168.1.132" and e["victim"] == HONEYPOT]
    assert local and all(e["type"] == "VERTICAL_PORT_SCAN" for e in local)
