"""The logins module on real Zeek logs (../shared/datasets), through a real slipsd."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.corpus


def analyze(corpus: Any, name: str) -> list[dict[str, Any]]:
    return corpus(name).of("logins")  # type: ignore[no-any-return]


def test_smtp_bad_logins_and_bruteforce(corpus: Any) -> None:
    # smtp.log: four transactions of one session from 10.1.11.101 to 80.75.42.226:25 within
    # 8.6 s, each answered "554 5.7.1 bad smtp-auth user".
    evidence = analyze(corpus, "test14-malicious-zeek-dir")
    found = sorted((e["type"], e["attacker"], e["victim"]) for e in evidence)
    assert found == [
        ("SMTP_BAD_LOGIN", "10.1.11.101", "80.75.42.226"),
        ("SMTP_LOGIN_BRUTEFORCE", "10.1.11.101", "80.75.42.226"),
    ]
    brute = next(e for e in evidence if e["type"] == "SMTP_LOGIN_BRUTEFORCE")
    assert brute["threat_level"] == "high" and brute["uids"] == ["CAyhWs12ySSqPUEjJ3"]


def test_ssh_client_version_change(corpus: Any) -> None:
    # software.log: 192.168.1.247 as SSH::CLIENT with OpenSSH_8.1, then OpenSSH_9.1.
    evidence = analyze(corpus, "test15-malicious-zeek-dir")
    assert [(e["type"], e["attacker"]) for e in evidence] == [
        ("MULTIPLE_SSH_CLIENT_VERSIONS", "192.168.1.247")
    ]
    assert "OpenSSH_8.1" in evidence[0]["description"]
    assert "OpenSSH_9.1" in evidence[0]["description"]
