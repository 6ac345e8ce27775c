"""The beaconing module on generated traffic (tests/beacon_traffic.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from slipsd.evidence import Evidence
from slipsd.module import Module
from slipsd.module_loader import ModuleRef, load_class
from slipsd.store import Store
from slipsd.testing import ModuleTestContext

from beacon_traffic import DAY, HOUR, Traffic, run
from conftest import REPO, module_dirs_conf

BEACON = "COMMAND_AND_CONTROL_BEACON"


def beaconing() -> type[Module]:
    return load_class(ModuleRef("beaconing", path=str(REPO / "modules" / "beaconing")))


def analyze(traffic: Traffic, config: dict[str, str] | None = None,
            **kwargs: Any) -> list[Evidence]:
    return run(ModuleTestContext(beaconing(), config), traffic, **kwargs)


def pairs(found: list[Evidence]) -> set[tuple[str, str]]:
    return {(e.attacker, e.victim) for e in found}


def benign(traffic: Traffic, hours: float) -> None:
    """A small office: three people browsing, NTP, DNS and a daily updater."""
    for i in range(3):
        traffic.browsing(f"192.168.1.{50 + i}", until=hours * HOUR)
    traffic.ntp("192.168.1.60", "198.51.100.123", until=hours * HOUR)
    traffic.dns("192.168.1.61", until=hours * HOUR, server="198.51.100.53")
    traffic.update_checks("192.168.1.62", "198.51.100.77", "updates.example.com",
                          days=hours * HOUR / DAY)


@pytest.mark.parametrize("period", [30, 60, 300])
@pytest.mark.parametrize("jitter", [0.0, 0.05, 0.1, 0.2])
def test_beacons_are_found_in_every_window(period: int, jitter: float) -> None:
    traffic = Traffic(seed=period + int(jitter * 100))
    beats = traffic.beacon("192.168.1.20", "203.0.113.80", period, jitter, until=6 * HOUR,
                           size=420, size_jitter=0.15)
    benign(traffic, 6)
    found = analyze(traffic)
    assert pairs(found) == {("192.168.1.20", "203.0.113.80")}, [e.description for e in found]
    # The ring outlives windows, so each of the six windows reports the beacon once;
    # a 300 s beacon has its tenth beat (min_connections) within the first 51 minutes.
    assert sorted(e.tw for e in found) == list(range(6))
    first = found[0]
    assert first.type == BEACON and first.threat_level == "medium"
    assert 0.4 <= first.confidence <= 0.9
    assert "on 443/tcp" in first.description and len(first.uids) == 10
    assert f"{beats} times" not in first.description  # the first report comes early


def test_benign_traffic_is_not_reported() -> None:
    traffic = Traffic(seed=5)
    for i in range(10):  # people browsing for two days
        traffic.browsing(f"192.168.1.{50 + i}", until=2 * DAY)
    traffic.ntp("192.168.1.60", "198.51.100.123", until=2 * DAY)
    traffic.dns("192.168.1.61", until=2 * DAY, server="198.51.100.53")
    traffic.update_checks("192.168.1.62", "198.51.100.77", "updates.example.com", days=7)
    traffic.update_checks("192.168.1.63", "198.51.100.78", "rare.example.com", days=7,
                          low=5.5 * HOUR, high=6.5 * HOUR)
    assert analyze(traffic) == []
    # What keeps NTP and the (regular but rare) update checks out are the port list and
    # max_period: without them they are periodic enough to be reported.
    loose = analyze(traffic, {"ignore_ports": "53", "max_period": str(DAY)})
    assert pairs(loose) == {("192.168.1.60", "198.51.100.123"),
                            ("192.168.1.62", "198.51.100.77"),
                            ("192.168.1.63", "198.51.100.78")}


def test_same_input_same_evidence_whatever_the_batch_order() -> None:
    traffic = Traffic(seed=9)
    # Named by SNI only, over twelve addresses: its first flow to each address is
    # named only if the module waits for the ssl record that may come after the flow.
    addresses = [f"198.51.100.{i}" for i in range(1, 13)]
    traffic.beacon("192.168.1.5", addresses, 60, 0.1, name="rotating.example.net",
                   until=4 * HOUR, resolve=False)
    traffic.beacon("192.168.1.6", "198.51.100.9", 120, 0.2, name="plain.example.net",
                   port=80, until=4 * HOUR)
    benign(traffic, 4)
    runs = [analyze(traffic), analyze(traffic), analyze(traffic, batch=500),
            analyze(traffic, batch=500, app_first=True)]
    ids = [[(e.id, e.confidence, e.description, e.uids) for e in found] for found in runs]
    assert ids[0] and all(sorted(other) == sorted(ids[0]) for other in ids[1:])
    # The rotating beacon is one destination only thanks to its name.
    assert {e.attacker for e in runs[0]} == {"192.168.1.5", "192.168.1.6"}
    assert all("rotating.example.net" in e.description for e in runs[0]
               if e.attacker == "192.168.1.5")


def test_addresses_without_a_name_are_separate_destinations() -> None:
    traffic = Traffic(seed=9)
    traffic.beacon("192.168.1.5", ["198.51.100.1", "198.51.100.2", "198.51.100.3"], 60, 0.1,
                   until=4 * HOUR, port=8443)
    assert analyze(traffic) == []  # each address alone gets beats at random
    traffic = Traffic(seed=9)
    traffic.beacon("192.168.1.5", "198.51.100.1", 60, 0.1, until=4 * HOUR, port=8443)
    assert len(analyze(traffic)) == 4


def test_connections_of_one_beat_count_once() -> None:
    traffic = Traffic(seed=3)
    start = traffic.start
    for i in range(40):  # every 90 s, three connections within 0.4 s
        for k in range(3):
            traffic.visit(start + 10 + i * 90 + k * 0.2, "192.168.1.7", "203.0.113.9", None,
                          300 + k)
    found = analyze(traffic)
    assert pairs(found) == {("192.168.1.7", "203.0.113.9")}
    assert "every 90.0 s" in found[0].description
    # Counted connection by connection, two gaps in three are 0.2 s: no rhythm.
    assert analyze(traffic, {"burst_seconds": "0"}) == []


def test_reports_are_bounded_per_profile_and_window() -> None:
    traffic = Traffic(seed=4)
    for i in range(30):  # one host, thirty beacons
        traffic.beacon("192.168.1.8", f"203.0.113.{100 + i}", 60, 0.05, until=2 * HOUR)
    found = analyze(traffic)
    per_window = Counter(e.tw for e in found)
    assert per_window == {0: 20, 1: 20}
    assert len({e.id for e in found}) == len(found)


def test_memory_is_bounded_with_many_destinations() -> None:
    traffic = Traffic(seed=6)
    traffic.beacon("192.168.1.9", "203.0.113.200", 60, 0.1, until=3 * HOUR)
    start = traffic.start
    for i in range(30_000):  # a crawler: each address once, every tenth three times
        ip = f"203.0.{130 + i // 250}.{i % 250 + 1}"
        for repeat in range(1 if i % 10 else 3):
            traffic.conn(start + i * 0.3 + repeat * 30, "192.168.1.10", ip, 443)
    ctx = ModuleTestContext(beaconing(), {"max_destinations": "500"})
    found = run(ctx, traffic)
    tracks = ctx.module.tracks  # type: ignore[attr-defined]
    assert len(tracks.young) <= 500 and len(tracks.old) <= 500
    assert tracks.evicted > 25_000
    # The churn went through probation; the beacon's track was protected.
    assert pairs(found) == {("192.168.1.9", "203.0.113.200")}


def test_a_real_daemon_on_a_generated_zeek_folder(make_daemon: Any, tmp_path: Path) -> None:
    traffic = Traffic(seed=21)
    traffic.beacon("192.168.1.30", "203.0.113.30", 60, 0.2, until=3 * HOUR,
                   name="cdn-check.example.net")
    traffic.beacon("192.168.1.31", "198.51.100.31", 300, 0.1, until=3 * HOUR, port=80,
                   name="telemetry.example.org")
    benign(traffic, 3)
    folder = traffic.write(tmp_path / "zeek")
    daemon = make_daemon(module_dirs_conf("beaconing"))
    run_info = daemon.analyze(folder, tmp_path / "out")
    assert run_info["state"] == "finished" and not run_info["problem"], run_info["problem"]
    evidence = Store(daemon.redis(), run_info["id"]).all_evidence()
    found = {(e["attacker"], e["victim"]) for e in evidence}
    assert found == {("192.168.1.30", "203.0.113.30"), ("192.168.1.31", "198.51.100.31")}
    # One per beacon and window (three windows; the 300 s one starts in window 0).
    assert Counter(e["attacker"] for e in evidence) == {"192.168.1.30": 3, "192.168.1.31": 3}
    assert any("cdn-check.example.net" in e["description"] for e in evidence)


def test_the_demo_capture_beacon(make_daemon: Any, tmp_path: Path) -> None:
    daemon = make_daemon(module_dirs_conf("beaconing"))
    run_info = daemon.analyze(REPO / "samples" / "demo.pcap", tmp_path / "out")
    assert run_info["state"] == "finished" and not run_info["problem"], run_info["problem"]
    evidence = Store(daemon.redis(), run_info["id"]).all_evidence()
    # scripts/make_demo_pcap.py: 192.168.56.102 fetches update-check.example.net every 60 s.
    assert [(e["attacker"], e["victim"]) for e in evidence] == [
        ("192.168.56.102", "198.51.100.23")]
    assert "update-check.example.net" in evidence[0]["description"]
