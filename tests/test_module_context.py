"""The services a module's context offers, through a real slipsd: ip info shown by
``slipsctl profile``, a cache that outlives runs, a data folder, and modules that
say they cannot run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from slipsctl.cli import app
from slipsd.store import IpInfo, Store

from conftest import TEST_MODULES, module_dirs_conf
from zeekgen import conn_record, write_conn_log


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir(parents=True)
    flows = [conn_record(1_700_000_000.0 + i, f"CCTX{i:08d}", "192.168.1.5", 40000 + i,
                         f"203.0.113.{i + 1}", 443, conn_state="SF", duration=1.0)
             for i in range(3)]
    write_conn_log(str(folder / "conn.log"), flows)
    return folder


def _profile(daemon: Any, ip: str, run: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["profile", ip, "--run", run, "--json",
                                      "--socket", str(daemon.socket)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)  # type: ignore[no-any-return]


def test_ip_info_cache_and_data_dir_across_runs(make_daemon: Any, tmp_path: Path) -> None:
    daemon = make_daemon(module_dirs_conf("enricher"))
    folder = _folder(tmp_path)
    first = daemon.analyze(folder)
    assert first["state"] == "finished", first
    info = _profile(daemon, "192.168.1.5", first["id"])["ip_info"]
    assert info == {"earlier_run": None, "tag": "tagged:192.168.1.5", "threaded": True}
    # A destination is no profile, yet what modules learnt about it is shown.
    shown = _profile(daemon, "203.0.113.2", first["id"])
    assert shown["ip_info"]["tag"] == "tagged:203.0.113.2" and shown["windows"] == []
    assert IpInfo(daemon.redis(), first["id"]).get("192.0.2.250") == {"at_shutdown": True}
    assert Store(daemon.redis(), first["id"]).all_evidence() == []

    second = daemon.analyze(folder)
    info = _profile(daemon, "192.168.1.5", second["id"])["ip_info"]
    assert info["earlier_run"] == first["id"]
    evidence = Store(daemon.redis(), second["id"]).all_evidence()
    assert sorted(e["attacker"] for e in evidence) == sorted(
        ["192.168.1.5", "203.0.113.1", "203.0.113.2", "203.0.113.3"])
    assert (daemon.root / "state" / "modules" / "enricher" / "runs").read_text() == "xx"

    # The embedded Redis keeps nothing on disk: slipsd saves the caches when it stops
    # and restores them when it starts, so paid-for answers outlive it.
    assert daemon.stop() == 0
    daemon.start()
    third = daemon.analyze(folder)
    assert _profile(daemon, "192.168.1.5", third["id"])["ip_info"]["earlier_run"] == second["id"]


def test_a_module_that_cannot_run_is_not_started(make_daemon: Any, tmp_path: Path) -> None:
    needed = tmp_path / "key"
    daemon = make_daemon(module_dirs_conf(
        "enricher, flow_counter", f"[enricher]\nrequired_file = {needed}\n"))
    run = daemon.analyze(_folder(tmp_path))
    assert run["state"] == "finished"
    assert run["modules"] == ["flow_counter"]
    assert run["unavailable_modules"] == {"enricher": f"required_file {needed}: no such file"}
    status = daemon.call("status")
    assert status["daemon"]["unavailable_modules"] == run["unavailable_modules"]
    text = CliRunner().invoke(app, ["status", "--socket", str(daemon.socket)]).output
    assert f"module enricher NOT STARTED: required_file {needed}: no such file" in text
    listing = CliRunner().invoke(app, ["modules", "--socket", str(daemon.socket)]).output
    assert "NOT STARTED" in listing

    needed.write_text("now here")
    again = daemon.analyze(_folder(tmp_path / "again"))
    assert again["modules"] == ["enricher", "flow_counter"] and not again["unavailable_modules"]
    assert TEST_MODULES  # the enricher lives among the tests' modules
