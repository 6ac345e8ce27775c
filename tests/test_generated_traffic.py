"""Every default module at once on realistic generated traffic (bench/gen_zeek.py):
what was mixed in is found, and the ordinary background raises no alert."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from slipsd.store import Store

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
import gen_zeek


def test_findings_and_no_false_alerts(make_daemon: Any, tmp_path: Path) -> None:
    folder = tmp_path / "traffic"
    truth = gen_zeek.generate(folder, flows=20_000, span=4 * 3600.0, hosts=40, servers=800,
                              fmt="json", seed=3)
    daemon = make_daemon(f"[threat_intelligence]\nlocal_feeds = feeds, {folder / 'feed.csv'}\n")
    run = daemon.analyze(folder)
    assert run["state"] == "finished", run
    assert run["summary"]["flows"] == truth["records"]["conn"]
    evidence = Store(daemon.redis(), run["id"]).all_evidence()

    def found(type_: str, attacker: str, victim: str | None = None) -> list[dict[str, Any]]:
        return [e for e in evidence if e["type"] == type_ and e["attacker"] == attacker
                and (victim is None or e["victim"] == victim)]

    scan, vertical = truth["horizontal_scan"], truth["vertical_scan"]
    assert found("HORIZONTAL_PORT_SCAN", scan["attacker"])
    assert found("VERTICAL_PORT_SCAN", vertical["attacker"], vertical["victim"])
    beacon = truth["beacon"]
    beacons = found("COMMAND_AND_CONTROL_BEACON", beacon["attacker"], beacon["victim"])
    assert len({e["tw"] for e in beacons}) >= 3  # in most of the four windows
    listed = truth["blacklisted"]
    for ip in listed["ips"]:
        assert found("BLACKLISTED_IP", listed["attacker"], ip), ip
    domains = " ".join(e["description"] for e in found("BLACKLISTED_DOMAIN", listed["attacker"]))
    assert all(d in domains for d in listed["domains"])

    mixed_in = {scan["attacker"], beacon["attacker"], listed["attacker"]}
    alerted = {a["profile"] for a in Store(daemon.redis(), run["id"]).alerts()}
    assert alerted <= mixed_in, f"false alerts on ordinary hosts: {alerted - mixed_in}"
    background = [e for e in evidence if e["profile"] not in mixed_in]
    # The background is ordinary traffic: some evidence may be fair, a storm is not.
    by_type: dict[str, int] = {}
    for e in background:
        by_type[e["type"]] = by_type.get(e["type"], 0) + 1
    assert len(background) <= 10, json.dumps(by_type)
