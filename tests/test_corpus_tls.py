"""The tls module on real Zeek logs (../shared/datasets), through a real slipsd."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from slipsd.store import Store

from conftest import Daemon, dataset, module_dirs_conf

pytestmark = pytest.mark.corpus

Analyze = Callable[[str], list[dict[str, Any]]]


@pytest.fixture(scope="module")
def tls_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Analyze]:
    """``tls_run(name)``: the tls module's evidence on a dataset, each analyzed once."""
    root = tmp_path_factory.mktemp("corpus-tls")
    daemon: Daemon | None = None
    runs: dict[str, list[dict[str, Any]]] = {}

    def analyze(name: str) -> list[dict[str, Any]]:
        nonlocal daemon
        folder = dataset(name)
        if name not in runs:
            if daemon is None:
                daemon = Daemon(root / "daemon", module_dirs_conf("tls")).start()
            run = daemon.analyze(folder, root / "out" / name)
            assert run["state"] == "finished" and not run["problem"], run["problem"]
            assert "Traceback" not in daemon.log_text()
            runs[name] = [e for e in Store(daemon.redis(), run["id"]).all_evidence()
                          if e["module"] == "tls"]
        return runs[name]

    yield analyze
    if daemon is not None:
        daemon.stop()


def found(evidence: list[dict[str, Any]], kind: str) -> set[tuple[str, str]]:
    return {(e["attacker"], e["victim"]) for e in evidence if e["type"] == kind}


def test_google_certificate_for_netflix(tls_run: Analyze) -> None:
    # ssl.log (no x509.log): 10.0.2.15 -> 52.0.131.132:443, SNI netflix.com, subject
    # "CN=www.google.com", issuer "...O=Google Inc": Google's name on an Amazon
    # address for Netflix's domain.
    evidence = tls_run("test15-malicious-zeek-dir")
    fake = [e for e in evidence if e["type"] == "INCOMPATIBLE_CERTIFICATE_ORG"]
    assert [(e["attacker"], e["victim"]) for e in fake] == [("10.0.2.15", "52.0.131.132")]
    assert "Google" in fake[0]["description"] and "netflix.com" in fake[0]["description"]
    assert fake[0]["threat_level"] == "medium" and fake[0]["confidence"] == 0.9
    # Only the CN is known there; it mismatches only where the names' owners say so
    # (www.google.com for netflix.com) or the CN is no host name at all ("whatever").
    assert found(evidence, "CN_SNI_MISMATCH") == {("10.0.2.15", "52.0.131.132"),
                                                  ("10.0.2.15", "22.33.22.33")}
    assert len(evidence) == 3, Counter(e["type"] for e in evidence)


def test_certificates_of_test9_with_x509(tls_run: Analyze) -> None:
    evidence = tls_run("test9-mixed-zeek-dir")
    # Microsoft's certificates (x509.log: www.microsoft.com, support.microsoft.com and
    # their alternative names) served for Netflix's names from addresses that are
    # neither's; and an ssl.log line whose issuer says Google's CA signed Bing's
    # certificate, on Microsoft's 204.79.197.200.
    assert found(evidence, "INCOMPATIBLE_CERTIFICATE_ORG") == {
        ("10.0.2.15", "123.33.22.11"), ("10.0.2.15", "22.22.33.22"),
        ("10.0.2.15", "204.79.197.200")}
    google = [e for e in evidence if e["victim"] == "204.79.197.200"]
    assert "Google" in google[0]["description"]
    assert found(evidence, "CN_SNI_MISMATCH") == {("10.0.2.15", "123.33.22.11"),
                                                  ("10.0.2.15", "22.22.33.22")}
    # With the alternative names known, the CDN and multi-name certificates of the
    # ~150 other handshakes (bing, akamai, doubleclick, ...) all cover their SNI.
    assert len(evidence) == 5, Counter(e["type"] for e in evidence)


def test_nothing_wrong_in_test10(tls_run: Analyze) -> None:
    # Let's Encrypt certificates and TLS 1.3 handshakes (no certificate visible); the
    # x509 record of virtual.secai.com has another CN but the SNI among its SANs.
    assert tls_run("test10-mixed-zeek-dir") == []
