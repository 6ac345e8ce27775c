"""The tunnels module on real Zeek logs (../shared/datasets), through a real slipsd."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.corpus


def test_gre_tunnel(corpus: Any) -> None:
    # tunnel.log: 10.0.2.15 <-> 115.112.11.30, Tunnel::GRE, discovered then expired.
    evidence = corpus("test14-malicious-zeek-dir").of("tunnels")
    assert [(e["type"], e["attacker"], e["victim"], e["threat_level"]) for e in evidence] == [
        ("GRE_TUNNEL", "10.0.2.15", "115.112.11.30", "low")
    ]
    assert "GRE" in evidence[0]["description"]
