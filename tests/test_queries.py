"""slipsctl runs, profiles, profile and version against a daemon that analyzed the demo."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from slipsctl.cli import app

from conftest import REPO, Daemon

runner = CliRunner()


def test_runs_profiles_and_one_profile(make_daemon: Any, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon()
    run = daemon.analyze(REPO / "samples" / "demo.pcap", tmp_path / "out")
    sock = ["--socket", str(daemon.socket)]
    listed = runner.invoke(app, ["runs", *sock])
    assert listed.exit_code == 0 and run["id"] in listed.output and "finished" in listed.output
    result = json.loads(runner.invoke(app, ["profiles", "--json", *sock]).output)
    assert result["run"] == run["id"]
    assert result["profiles"][0]["ip"] == "192.168.56.103"  # sorted by score: the scanner
    assert result["profiles"][0]["alerts"] == 1
    alerted = json.loads(runner.invoke(app, ["profiles", "--alerted", "--json", *sock]).output)
    # The scanner, then the beaconing host (its C&C name is in the shipped demo feed).
    assert [p["ip"] for p in alerted["profiles"]] == ["192.168.56.103", "192.168.56.102"]
    by_flows = json.loads(runner.invoke(app, ["profiles", "--sort", "flows", "--json",
                                              *sock]).output)["profiles"]
    assert [p["flows"] for p in by_flows] == sorted((p["flows"] for p in by_flows), reverse=True)
    shown = runner.invoke(app, ["profile", "192.168.56.103", *sock])
    assert shown.exit_code == 0
    assert "HORIZONTAL_PORT_SCAN" in shown.output and "ALERT score" in shown.output
    missing = runner.invoke(app, ["profile", "10.9.9.9", *sock])
    assert missing.exit_code == 1 and "no profile 10.9.9.9" in missing.output
    bad = runner.invoke(app, ["profiles", "--sort", "color", *sock])
    assert bad.exit_code == 1 and "sort must be" in bad.output


def test_version_with_and_without_a_daemon(make_daemon: Any, tmp_path: Path) -> None:
    alone = runner.invoke(app, ["version", "--socket", str(tmp_path / "none.sock")])
    assert alone.exit_code == 0 and "slipsctl 0." in alone.output and "not running" in alone.output
    daemon: Daemon = make_daemon()
    both = runner.invoke(app, ["version", "--socket", str(daemon.socket)])
    assert "slipsd 0." in both.output and "protocol 1" in both.output
