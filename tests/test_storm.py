"""No evidence storm: 100,000 generated flows plus a 5,000-flow scan, every default module."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from slipsd.store import Store

import zeekgen
from conftest import Daemon

SCANNER = "192.168.1.66"


def scan_flows(n: int, start: float) -> list[dict[str, Any]]:
    """A horizontal scan of 445/tcp: one SYN to each of n hosts, unanswered."""
    return [zeekgen.conn_record(start + i * 0.01, f"CSCAN{i:013d}", SCANNER, 40000 + i % 20000,
                                f"10.{20 + i // 65536}.{(i // 256) % 256}.{i % 256}", 445,
                                conn_state="S0", history="S", orig_pkts=1, duration=None)
            for i in range(n)]


def test_evidence_stays_bounded_and_a_scan_is_a_handful(make_daemon: Any, tmp_path: Path) -> None:
    flows = zeekgen.make_conn_flows(100_000, seed=5, span=3 * 3600)
    flows += scan_flows(5000, flows[0]["ts"] + 600)
    flows.sort(key=lambda f: f["ts"])
    (tmp_path / "logs").mkdir()
    zeekgen.write_conn_log(str(tmp_path / "logs" / "conn.log"), flows)
    daemon: Daemon = make_daemon()  # the shipped configuration: every default module
    run = daemon.analyze(tmp_path / "logs", tmp_path / "out")
    assert run["summary"]["flows"] == 105_000
    evidence = Store(daemon.redis(), run["id"]).all_evidence()
    per_window = Counter((e["profile"], e["tw"]) for e in evidence)
    # Each module reports a behaviour once per attacker, victim and window, or at
    # powers of ten of its count, and caps the victims listed one by one: so a
    # profile's window holds a few evidence whatever the number of flows.
    assert max(per_window.values()) <= 15, per_window.most_common(3)
    assert len(evidence) < 0.01 * 105_000
    scan = [e for e in evidence if e["attacker"] == SCANNER]
    assert sorted(e["type"] for e in scan if e["type"] == "HORIZONTAL_PORT_SCAN") == [
        "HORIZONTAL_PORT_SCAN"] * 3  # at 10, 100 and 1000 hosts
    assert len(scan) <= 8  # plus at most 5 private addresses outside the local network
    assert any(a["profile"] == SCANNER for a in Store(daemon.redis(), run["id"]).alerts())
    # The generated background is benign: it raises no alert of its own.
    assert {a["profile"] for a in Store(daemon.redis(), run["id"]).alerts()} == {SCANNER}
