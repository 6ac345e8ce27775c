"""The dns module on real Zeek logs (../shared/datasets), through a real slipsd."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slipsd.store import Store

from conftest import Daemon, dataset, module_dirs_conf

pytestmark = pytest.mark.corpus

ZEEK_DATASETS = ("test9-mixed-zeek-dir", "test10-mixed-zeek-dir",
                 "test13-malicious-dhcpscan-zeek-dir", "test14-malicious-zeek-dir",
                 "test15-malicious-zeek-dir", "test16-malicious-zeek-dir")
Analyze = Callable[[str], list[dict[str, Any]]]


def analyzer(root: Path, conf: str) -> Iterator[Analyze]:
    daemon: Daemon | None = None
    done: dict[str, list[dict[str, Any]]] = {}

    def analyze(name: str) -> list[dict[str, Any]]:
        nonlocal daemon
        folder = dataset(name)
        if name not in done:
            if daemon is None:
                daemon = Daemon(root, module_dirs_conf("dns", conf)).start()
            run = daemon.analyze(folder, root / "out" / name)
            assert run["state"] == "finished" and not run["problem"], run["problem"]
            assert "Traceback" not in daemon.log_text()
            done[name] = [e for e in Store(daemon.redis(), run["id"]).all_evidence()
                          if e["module"] == "dns"]
        return done[name]

    yield analyze
    if daemon is not None:
        daemon.stop()


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Analyze]:
    """The module with its shipped options."""
    yield from analyzer(tmp_path_factory.mktemp("dns-defaults"), "")


@pytest.fixture(scope="module")
def eager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Analyze]:
    """Short waits and low thresholds, so the few minutes of these captures are judged."""
    yield from analyzer(tmp_path_factory.mktemp("dns-eager"),
                        "[dns]\nconnection_wait = 30\nnxdomain_threshold = 3\n")


def test_high_entropy_txt_answer(defaults: Analyze) -> None:
    # dns.log (TSV): the printer 147.32.83.181 announces itself over mDNS with a 1,000-
    # character TXT record set (5.68 bits per character without Zeek's "TXT n" framing).
    evidence = defaults("test10-mixed-zeek-dir")
    found = [e for e in evidence if e["type"] == "HIGH_ENTROPY_DNS_TXT"]
    assert [(e["attacker"], e["threat_level"]) for e in found] == [("147.32.83.181", "low")]
    assert "samsung m267x 287x series" in found[0]["description"]
    assert "5.68 bits" in found[0]["description"]
    assert len(evidence) == 1, Counter(e["type"] for e in evidence)


@pytest.mark.parametrize("name", ZEEK_DATASETS)
def test_few_evidence_with_defaults(defaults: Analyze, name: str) -> None:
    evidence = defaults(name)
    counts = Counter(e["type"] for e in evidence)
    # Every capture is shorter than connection_wait (30 min): no name can be judged
    # unused, however its answers were (not) used.
    assert counts["DNS_WITHOUT_CONNECTION"] == 0, counts
    assert len(evidence) <= 2, counts


def test_every_resolved_name_of_test9_is_used(eager: Analyze) -> None:
    # 10.0.2.15 browses for four minutes and connects to an address of every name it
    # resolves. Its conn.log is in Zeek's order (by connection end): a 60-second
    # connection to 23.4.251.95 (go.microsoft.com) comes a minute after later ones,
    # and must still count for the name it was resolved from.
    evidence = eager("test9-mixed-zeek-dir")
    counts = Counter(e["type"] for e in evidence)
    assert counts["DNS_WITHOUT_CONNECTION"] == 0, [e["description"] for e in evidence]
    # Windows' probes: isatap, teredo and a random Chrome name under the search domain.
    dga = [e for e in evidence if e["type"] == "DGA_NXDOMAINS"]
    assert [(e["attacker"], e["victim"]) for e in dga] == [("10.0.2.15", "")]
    assert "isatap.felk.cvut.cz" in dga[0]["description"]
    assert len(evidence) <= 3, counts


@pytest.mark.parametrize("name", ZEEK_DATASETS)
def test_few_evidence_when_eager(eager: Analyze, name: str) -> None:
    evidence = eager(name)
    assert len(evidence) <= 3, Counter(e["type"] for e in evidence)
