"""The beaconing module on the real captures of ../shared/datasets (skipped when absent)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from slipsd.store import Store

from conftest import dataset, module_dirs_conf

pytestmark = pytest.mark.corpus

ZEEK_FOLDERS = ["test9-mixed-zeek-dir", "test10-mixed-zeek-dir",
                "test13-malicious-dhcpscan-zeek-dir", "test14-malicious-zeek-dir",
                "test15-malicious-zeek-dir", "test16-malicious-zeek-dir"]


def beacons(daemon: Any, folder: Path, out: Path) -> list[dict[str, Any]]:
    run = daemon.analyze(folder, out)
    assert run["state"] == "finished" and not run["problem"], run["problem"]
    return [e for e in Store(daemon.redis(), run["id"]).all_evidence()
            if e["module"] == "beaconing"]


def test_quiet_on_the_zeek_captures(make_daemon: Any, tmp_path: Path) -> None:
    folders = [dataset(name) for name in ZEEK_FOLDERS]
    daemon = make_daemon(module_dirs_conf("beaconing"))
    for folder in folders:
        # Browsing, DNS, mail and a few malware sessions of minutes: nothing keeps a
        # rhythm over ten connections (observed: no evidence in any of them).
        found = beacons(daemon, folder, tmp_path / folder.name)
        assert found == [], (folder.name, [e["description"] for e in found])
    assert "Traceback" not in daemon.log_text()


def test_device_heartbeats_in_the_suricata_capture(make_daemon: Any, tmp_path: Path) -> None:
    folder = dataset("test6-malicious.suricata.json")
    daemon = make_daemon(module_dirs_conf("beaconing"))
    found = beacons(daemon, folder, tmp_path / "out")
    # 192.168.1.129 (an Edimax device, going by the name in its DNS answers) sends a UDP
    # heartbeat to two cloud servers on port 8760 every 19 min 13 s: periodic, if benign.
    assert {(e["attacker"], e["victim"]) for e in found} == {
        ("192.168.1.129", "122.248.234.231"), ("192.168.1.129", "122.248.252.67")}
    assert all("on 8760/udp" in e["description"] for e in found)
    assert any("www.myedimax.com" in e["description"] for e in found)
    # At most one evidence per destination and window (observed: 18 over 14 windows).
    per_window = Counter((e["victim"], e["tw"]) for e in found)
    assert max(per_window.values()) == 1 and len(found) <= 30


def test_quiet_on_the_other_captures(make_daemon: Any, tmp_path: Path) -> None:
    names = ["test2-malicious.binetflow", "test3-mixed.binetflow", "test4-malicious.binetflow",
             "test5-mixed.binetflow", "test7-malicious.pcap", "test8-malicious.pcap"]
    folders = [dataset(name) for name in names]
    daemon = make_daemon(module_dirs_conf("beaconing"))
    for folder in folders:
        # Argus flows of malware and scans, and two short captures (observed: nothing).
        found = beacons(daemon, folder, tmp_path / folder.name)
        assert found == [], (folder.name, [e["description"] for e in found])
