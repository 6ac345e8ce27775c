"""The correlation module on real Zeek logs (../shared/datasets), through a real slipsd."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

pytestmark = pytest.mark.corpus


def analyze(corpus: Any, name: str) -> list[dict[str, Any]]:
    return corpus(name).of("correlation")  # type: ignore[no-any-return]


def test_non_http_port_80(corpus: Any) -> None:
    # conn.log: 10.0.2.15 -> 194.132.197.198:80, SF "ShAFaf", 5 bytes out and 3 back,
    # no service, and http.log has nothing between the two hosts.
    evidence = analyze(corpus, "test9-mixed-zeek-dir")
    found = [(e["attacker"], e["victim"]) for e in evidence if e["type"] == "NON_HTTP_PORT_80"]
    assert found == [("10.0.2.15", "194.132.197.198")]
    # Every other port-80 flow with payload has its http.log records: nothing else fires.
    counts = Counter(e["type"] for e in evidence)
    assert counts["CONNECTION_WITHOUT_DNS"] <= 10, counts
    assert len(evidence) <= 15, counts


def test_non_tls_port_443(corpus: Any) -> None:
    # conn.log (TSV): 192.0.2.44 -> 185.247.224.89:443, SF, 980 bytes out, no service and
    # no ssl.log record. The port-443 flows of 147.32.83.156 without TLS are partial (OTH,
    # no SYN seen: they began before the capture) and are deliberately not reported.
    evidence = analyze(corpus, "test10-mixed-zeek-dir")
    found = [(e["attacker"], e["victim"]) for e in evidence if e["type"] == "NON_TLS_PORT_443"]
    assert ("192.0.2.44", "185.247.224.89") in found
    assert len(found) <= 3
    counts = Counter(e["type"] for e in evidence)
    assert counts["CONNECTION_WITHOUT_DNS"] <= 10, counts
    assert len(evidence) <= 15, counts
