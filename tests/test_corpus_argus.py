"""Real Argus binetflow files from ../shared/datasets through a real slipsd (skipped if absent)."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import dataset

pytestmark = pytest.mark.corpus


@pytest.mark.parametrize(("name", "known_bad"), [
    ("test2-malicious.binetflow", []),
    # Line 58 is damaged: its Dir column reads " get_message  ->" (text leaked into
    # ra's output). The rest of the line looks sane, but a damaged line is reported,
    # not guessed at: it is one SYN to 23/tcp, which no expected detection needs.
    ("test3-mixed.binetflow", ["test3-mixed.binetflow:58: Dir ' get_message  ->' is not an "
                               "Argus direction"]),
    ("test4-malicious.binetflow", []),
    ("test5-mixed.binetflow", []),
])  # fmt: skip
def test_every_line_is_accounted_for(corpus: Any, name: str, known_bad: list[str]) -> None:
    path = dataset(name)
    result = corpus(name)
    summary = result.summary
    errors = summary["input_errors"]
    assert len(errors) == len(known_bad) == summary["bad_lines"]
    for expected, got in zip(known_bad, errors, strict=True):
        assert got.endswith(expected)
    [stats] = summary["files"]
    assert stats["log_type"] == "binetflow"
    assert stats["lines"] == stats["parsed"] + stats["bad"] + stats["meta"]
    assert stats["lines"] == len(path.read_bytes().splitlines()) == summary["lines"]
    assert summary["events"] == summary["flows"] == stats["parsed"]
    assert "Traceback" not in result.log


def test_meta_lines_are_headers_and_non_ip_records(corpus: Any) -> None:
    # test4: the header and two ARP records; test5: the header, a management (man)
    # record, an LLC frame between MAC addresses and two ARP records.
    assert corpus("test4-malicious.binetflow").summary["files"][0]["meta"] == 3
    assert corpus("test5-mixed.binetflow").summary["files"][0]["meta"] == 5


def test_horizontal_scan_of_81_test4(corpus: Any) -> None:
    # 192.168.2.12 sends single SYNs (Argus state REQ, Zeek S0) to 81/tcp and 23/tcp
    # of many internet hosts.
    scans = corpus("test4-malicious.binetflow").of("scans")
    horizontal = [e for e in scans if e["type"] == "HORIZONTAL_PORT_SCAN"]
    assert {e["attacker"] for e in horizontal} == {"192.168.2.12"}
    assert any("on port 81/tcp" in e["description"] for e in horizontal)


def test_horizontal_scan_of_3389_test3(corpus: Any) -> None:
    # 46.166.151.160 sends one packet with SYN, RST, PSH and ACK set (SRPA_) to
    # 3389/tcp of 28 hosts, none answers: Zeek's RSTOS0, not established.
    result = corpus("test3-mixed.binetflow")
    horizontal = [e for e in result.of("scans") if e["type"] == "HORIZONTAL_PORT_SCAN"]
    rdp = [e for e in horizontal if e["attacker"] == "46.166.151.160"]
    assert len(rdp) == 1 and "on port 3389/tcp" in rdp[0]["description"]
    assert result.summary["profiles"] > 20


@pytest.mark.parametrize(("name", "minimum"), [
    ("test2-malicious.binetflow", 40),
    # Three flows last over 25 minutes: one to 10.0.2.255 (reported), one to a
    # multicast group (never reported) and an ARP record (not a flow).
    ("test5-mixed.binetflow", 1),
])  # fmt: skip
def test_long_connections(corpus: Any, name: str, minimum: int) -> None:
    long = corpus(name).of("long_connection")
    assert len(long) >= minimum
    assert all(e["type"] == "LONG_CONNECTION" for e in long)


def test_more_than_four_profiles_test5(corpus: Any) -> None:
    assert corpus("test5-mixed.binetflow").summary["profiles"] > 4


def test_no_evidence_from_missing_application_logs(corpus: Any) -> None:
    # Argus has no application layer; the input says it can only give conn records,
    # so 443/80 flows without ssl.log/http.log records are not taken for evidence
    # (test2 alone has over a thousand established connections to 443/tcp).
    for name in ("test2-malicious.binetflow", "test5-mixed.binetflow"):
        types = {e["type"] for e in corpus(name).evidence}
        assert not types & {"NON_TLS_PORT_443", "NON_HTTP_PORT_80", "CONNECTION_WITHOUT_DNS"}
