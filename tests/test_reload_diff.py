"""What a reload would change, from two real configuration files."""

from __future__ import annotations

from pathlib import Path

from slipsd.config import load
from slipsd.reload import diff


def conf(folder: Path, text: str) -> Path:
    folder.mkdir()
    (folder / "slips.conf").write_text(text)
    return folder / "slips.conf"


def test_diff_sorts_changes_into_actions(tmp_path: Path) -> None:
    old = load(conf(tmp_path / "a", "[modules]\nenabled = long_connection, scans\n"
                    "[sensors]\ninterfaces = eth0\n[alerts]\nthreshold = 1\n"
                    "[scans]\nhorizontal_threshold = 10\n"))
    new = load(conf(tmp_path / "b", "[modules]\nenabled = scans, flows\n"
                    "[sensors]\ninterfaces = eth1\n[alerts]\nthreshold = 2\n"
                    "[scans]\nhorizontal_threshold = 20\n[database]\nurl = redis://x:6379\n"))
    change = diff(old, new)
    assert change.modules_started == ["flows"]
    assert change.modules_stopped == ["long_connection"]
    assert change.modules_reconfigured == ["scans"]
    assert (change.sensors_added, change.sensors_removed) == (["eth1"], ["eth0"])
    assert change.changed["alerts.threshold"] == (1.0, 2.0)
    assert change.needs_restart == ["database.url"]
    assert not change.empty
    assert diff(old, old).empty
