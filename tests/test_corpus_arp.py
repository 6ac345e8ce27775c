"""The arp module on real Zeek logs (../shared/datasets), through a real slipsd."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.corpus


def arp_evidence(corpus: Any, name: str) -> list[dict[str, Any]]:
    return corpus(name).of("arp")  # type: ignore[no-any-return]


def found(evidence: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(e["type"], e["attacker"], e["victim"]) for e in evidence}


# Both captures hold the same two crafted ARP packets from 192.168.1.15: a request
# for 69.220.152.0 (a public address, outside 192.168.1.0/24) and a reply sent to
# the broadcast MAC. The sender's hardware address is the same in both, so no
# binding changes (no ARP_MITM, no DEVICE_CHANGING_IP).
@pytest.mark.parametrize("name", ["test9-mixed-zeek-dir", "test16-malicious-zeek-dir"])
def test_unsolicited_and_outside_localnet(corpus: Any, name: str) -> None:
    evidence = arp_evidence(corpus, name)
    assert found(evidence) == {
        ("ARP_OUTSIDE_LOCALNET", "192.168.1.15", "69.220.152.0"),
        ("UNSOLICITED_ARP", "192.168.1.15", ""),
    }
    assert len(evidence) == 2  # no storm: one evidence per finding


def test_dhcp_scan_is_not_a_device_changing_ip(corpus: Any) -> None:
    # One client (one MAC, one client address) requesting many addresses: the
    # requested addresses are never taken as the device's own.
    assert arp_evidence(corpus, "test13-malicious-dhcpscan-zeek-dir") == []
