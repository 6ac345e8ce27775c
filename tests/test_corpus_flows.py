"""The flows module on real Zeek logs from ../shared/datasets (skipped when absent)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

pytestmark = pytest.mark.corpus


def flows_evidence(corpus: Any, name: str) -> list[dict[str, Any]]:
    return corpus(name).of("flows")  # type: ignore[no-any-return]


def test_test14_rejected_reconnections(corpus: Any) -> None:
    found = flows_evidence(corpus, "test14-malicious-zeek-dir")
    hits = [e for e in found if e["type"] == "MULTIPLE_RECONNECTION_ATTEMPTS"]
    assert [(e["attacker"], e["victim"]) for e in hits] == [("10.0.2.15", "123.22.123.22")]
    assert "547/tcp" in hits[0]["description"]
    # Five REJ lines to 547/tcp (no well-known service on TCP) and two HTTP flows:
    # the reconnections, plus that failed attempt as an UNKNOWN_PORT.
    assert Counter(e["type"] for e in found) == {
        "MULTIPLE_RECONNECTION_ATTEMPTS": 1, "UNKNOWN_PORT": 1}


def test_test10_unknown_ports_but_not_for_the_scanner(corpus: Any) -> None:
    found = flows_evidence(corpus, "test10-mixed-zeek-dir")
    # 192.0.2.44 reached 156.87.76.4 on 1337/tcp and 337/tcp; 192.0.2.10 tried 1337/tcp
    # on ten hosts without an answer, which makes it a scanner, not ten unknown ports.
    unknown = {(e["attacker"], e["victim"], e["threat_level"]) for e in found
               if e["type"] == "UNKNOWN_PORT"}
    assert ("192.0.2.44", "156.87.76.4", "medium") in unknown
    assert not any(e["attacker"] == "192.0.2.10" for e in found)
    # 141 flows, nearly all DNS/TLS/mDNS of a few real hosts: the two unknown ports are
    # all there is (observed: exactly 2); a handful is the most that could be justified.
    assert len(found) <= 5, Counter(e["type"] for e in found)


@pytest.mark.parametrize("name", ["test9-mixed-zeek-dir", "test15-malicious-zeek-dir"])
def test_no_storm_on_benign_looking_captures(corpus: Any, name: str) -> None:
    found = flows_evidence(corpus, name)
    # test9: 576 flows of one host (10.0.2.15) to well-known ports of public servers; its
    # private destinations are in 10.0.2.0/24 or multicast/broadcast. test15: two HTTP
    # flows. Observed: none; allow a couple so a harmless tweak does not break the test.
    assert len(found) <= 2, [f"{e['type']} {e['attacker']}->{e['victim']}" for e in found]
