"""threat_intelligence on real Zeek logs (../shared/datasets), through a real slipsd,
with feeds the test writes: the known TLS fingerprints of test15 and test9."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slipsd.store import Store

from conftest import dataset, module_dirs_conf

pytestmark = pytest.mark.corpus


def analyze(make_daemon: Callable[..., Any], tmp_path: Path, name: str,
            feed: str) -> list[dict[str, Any]]:
    folder = dataset(name)
    path = tmp_path / "feed.csv"
    path.write_text(feed)
    daemon = make_daemon(module_dirs_conf(
        "threat_intelligence", f"[threat_intelligence]\nlocal_feeds = feeds, {path}\n"))
    run = daemon.analyze(folder, tmp_path / "out")
    assert run["state"] == "finished" and not run["problem"], run["problem"]
    assert "Traceback" not in daemon.log_text()
    return [e for e in Store(daemon.redis(), run["id"]).all_evidence()
            if e["module"] == "threat_intelligence"]


def test_malicious_ja3_in_test15(make_daemon: Callable[..., Any], tmp_path: Path) -> None:
    # ssl.log: 10.0.2.15 -> 22.33.22.33:443, SNI netflix.com, ja3 6734f374...
    evidence = analyze(make_daemon, tmp_path, "test15-malicious-zeek-dir",
                       "6734f37431670b3ab4292b8f60f29984,high,Example malware JA3,ja3\n")
    assert [(e["type"], e["attacker"], e["victim"], e["threat_level"]) for e in evidence] == [
        ("MALICIOUS_TLS_FINGERPRINT", "10.0.2.15", "22.33.22.33", "high")]
    assert "client JA3 6734f37431670b3ab4292b8f60f29984" in evidence[0]["description"]


def test_tor_client_fingerprint_in_test9(make_daemon: Callable[..., Any], tmp_path: Path) -> None:
    # The JA3 that the JA3 authors published for the standard Tor client
    # (e7d705a3...) is in test9's ssl.log, in the ja3s field of 10.0.2.15 ->
    # 123.33.22.11:443 (SNI www.netflix.com); the same dataset's other
    # fingerprints (two client JA3s) must not match it.
    evidence = analyze(make_daemon, tmp_path, "test9-mixed-zeek-dir",
                       "e7d705a3286e19ea42f587b344ee6865,low,Tor client,ja3\n")
    assert [(e["type"], e["attacker"], e["victim"], e["threat_level"]) for e in evidence] == [
        ("MALICIOUS_TLS_FINGERPRINT", "10.0.2.15", "123.33.22.11", "low")]
    assert evidence[0]["description"].endswith("listed in feed.csv: Tor client")


def test_many_indicators_of_test9_no_storm(make_daemon: Callable[..., Any],
                                          tmp_path: Path) -> None:
    # Every address, domain and fingerprint test9's host talks to, listed: still
    # one evidence per indicator, at most evidence_limit (10) per type in a window.
    feed = "\n".join([
        "147.32.80.9,low,the lab's resolver",  # every DNS query goes there
        "216.58.201.0/24,low,a Google range",
        "google.com,low,Google", "doubleclick.net,low,ads",
        "e7d705a3286e19ea42f587b344ee6865,low,Tor client,ja3",
        "8916410db85077a5460817142dcbc8de,low,another client,ja3",
    ]) + "\n"
    evidence = analyze(make_daemon, tmp_path, "test9-mixed-zeek-dir", feed)
    by_type: dict[tuple[str, str, int], int] = {}
    for e in evidence:
        key = (e["type"], e["profile"], e["tw"])
        by_type[key] = by_type.get(key, 0) + 1
    assert max(by_type.values()) <= 10
    types = {e["type"] for e in evidence}
    assert {"BLACKLISTED_IP", "BLACKLISTED_DOMAIN", "MALICIOUS_TLS_FINGERPRINT"} <= types
    assert len(evidence) < 40
