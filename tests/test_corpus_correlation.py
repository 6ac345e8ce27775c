"""The correlation module on real Zeek logs (../shared/datasets), through a real slipsd."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from slipsd.store import Store

from conftest import dataset, module_dirs_conf

pytestmark = pytest.mark.corpus


def analyze(make_daemon: Any, tmp_path: Path, name: str) -> list[dict[str, Any]]:
    folder = dataset(name)
    daemon = make_daemon(module_dirs_conf("correlation"))
    run = daemon.analyze(folder, tmp_path / "out")
    assert run["state"] == "finished" and not run["problem"]
    assert "Traceback" not in daemon.log_text()
    return [e for e in Store(daemon.redis(), run["id"]).all_evidence()
            if e["module"] == "correlation"]


def test_non_http_port_80(make_daemon: Any, tmp_path: Path) -> None:
    # conn.log: 10.0.2.15 -> 194.132.197.198:80, SF "ShAFaf", 5 bytes out and 3 back,
    # no service, and http.log has nothing between the two hosts.
    evidence = analyze(make_daemon, tmp_path, "test9-mixed-zeek-dir")
    found = [(e["attacker"], e["victim"]) for e in evidence if e["type"] == "NON_HTTP_PORT_80"]
    assert found == [("10.0.2.15", "194.132.197.198")]
    # Every other port-80 flow with payload has its http.log records: nothing else fires.
    counts = Counter(e["type"] for e in evidence)
    assert counts["CONNECTION_WITHOUT_DNS"] <= 10, counts
    assert len(evidence) <= 15, counts


def test_non_tls_port_443(make_daemon: Any, tmp_path: Path) -> None:
    # conn.log (TSV): 192.0.2.44 -> 185.247.224.89:443, SF, 980 bytes out, no service and
    # no ssl.log record. The port-443 flows of 147.32.83.156 without TLS are partial (OTH,
    # no SYN seen: they began before the capture) and are deliberately not reported.
    evidence = analyze(make_daemon, tmp_path, "test10-mixed-zeek-dir")
    found = [(e["attacker"], e["victim"]) for e in evidence if e["type"] == "NON_TLS_PORT_443"]
    assert ("192.0.2.44", "185.247.224.89") in found
    assert len(found) <= 3
    counts = Counter(e["type"] for e in evidence)
    assert counts["CONNECTION_WITHOUT_DNS"] <= 10, counts
    assert len(evidence) <= 15, counts
