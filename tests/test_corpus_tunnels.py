"""The tunnels module on real Zeek logs (../shared/datasets), through a real slipsd."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from slipsd.store import Store

from conftest import dataset, module_dirs_conf

pytestmark = pytest.mark.corpus


def test_gre_tunnel(make_daemon: Any, tmp_path: Path) -> None:
    # tunnel.log: 10.0.2.15 <-> 115.112.11.30, Tunnel::GRE, discovered then expired.
    folder = dataset("test14-malicious-zeek-dir")
    daemon = make_daemon(module_dirs_conf("tunnels"))
    run = daemon.analyze(folder, tmp_path / "out")
    assert run["state"] == "finished" and not run["problem"]
    assert "Traceback" not in daemon.log_text()
    evidence = [e for e in Store(daemon.redis(), run["id"]).all_evidence()
                if e["module"] == "tunnels"]
    assert [(e["type"], e["attacker"], e["victim"], e["threat_level"]) for e in evidence] == [
        ("GRE_TUNNEL", "10.0.2.15", "115.112.11.30", "low")
    ]
    assert "GRE" in evidence[0]["description"]
