"""Address kinds, local networks and the service table modules rely on."""

from __future__ import annotations

import pytest

from slipsd.netinfo import LocalNetworks, is_group, is_private, is_public, load_ports


@pytest.mark.parametrize(("address", "private", "public"), [
    ("192.168.1.10", True, False), ("10.0.0.1", True, False), ("fd00::1", True, False),
    ("169.254.1.1", True, False), ("8.8.8.8", False, True), ("2a00:1450::1", False, True),
    ("198.51.100.7", False, True), ("203.0.113.9", False, True),  # documentation = internet
    ("224.0.0.251", False, False), ("255.255.255.255", False, False),
    ("127.0.0.1", False, False), ("0.0.0.0", False, False), ("not-an-ip", False, False),
])
def test_address_kinds(address: str, private: bool, public: bool) -> None:
    assert is_private(address) is private
    assert is_public(address) is public
    assert not (private and public)


def test_group_addresses() -> None:
    assert is_group("224.0.0.251") and is_group("ff02::1") and is_group("255.255.255.255")
    assert not is_group("192.168.1.255")  # a directed broadcast needs the netmask to tell


def test_local_networks_learnt_from_private_sources() -> None:
    nets = LocalNetworks()
    assert nets.guessing and not nets.contains("192.168.1.20")
    nets.learn("192.168.1.10")
    nets.learn("8.8.8.8")  # public sources teach nothing
    assert nets.contains("192.168.1.20") and not nets.contains("192.168.2.20")
    assert not nets.contains("8.8.8.9")
    for i in range(LocalNetworks.MAX_LEARNT + 100):
        nets.learn(f"10.{i // 256}.{i % 256}.1")
    assert len(nets.learnt) == LocalNetworks.MAX_LEARNT


def test_configured_networks_win() -> None:
    nets = LocalNetworks(["10.0.0.0/8"])
    nets.learn("192.168.1.10")
    assert not nets.guessing
    assert nets.contains("10.200.1.1") and not nets.contains("192.168.1.20")


def test_bundled_port_table() -> None:
    ports = load_ports()
    assert ports[(443, "tcp")] == "https" and ports[(53, "udp")] == "domain"
    assert (3389, "tcp") in ports and (5353, "udp") in ports  # added to netbase's list
    assert (31337, "tcp") not in ports
