"""slipsctl reload and SIGHUP: validate first, keep the running config when invalid,
apply a valid one as a diff to the live run without restarting the daemon."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any

from typer.testing import CliRunner

from slipsctl.cli import app

from conftest import Daemon, wait_for
from test_live import live_conf

runner = CliRunner()


def drop_in(daemon: Daemon, text: str) -> None:
    (daemon.config.parent / "slips.d" / "70-reload.conf").write_text(text)


def module_hosts(daemon: Daemon) -> set[str]:
    """The modules running in a live host process."""
    return {m for c in daemon.children("module") if c["pid"] for m in c.get("modules", ())}


def host_of(daemon: Daemon, module: str) -> int | None:
    return next((c["pid"] for c in daemon.children("module")
                 if module in c.get("modules", ()) and c["pid"]), None)


def test_invalid_config_is_rejected_and_the_old_one_stays(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon(live_conf())
    before = wait_for(lambda: module_hosts(daemon), 30, "the live module hosts")
    drop_in(daemon, "[alerts]\nthreshold = lots\n")
    out = runner.invoke(app, ["reload", "--socket", str(daemon.socket)])
    assert out.exit_code == 1
    assert "70-reload.conf: [alerts] threshold" in out.output
    assert "running one stays" in out.output
    assert module_hosts(daemon) == before
    assert daemon.call("hello")["pid"] == daemon.proc.pid  # type: ignore[union-attr]


def test_valid_config_is_applied_as_a_diff(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon(live_conf())
    wait_for(lambda: "long_connection" in module_hosts(daemon), 30, "the live module hosts")
    sensor_pid = daemon.children("sensor")[0]["pid"]
    drop_in(daemon, "[modules]\nenabled = long_connection, scans, template\n"
                    "[long_connection]\nthreshold = 600\n")
    out = runner.invoke(app, ["reload", "--socket", str(daemon.socket)])
    assert out.exit_code == 0, out.output
    assert "modules started: template" in out.output
    assert "modules stopped: flows, arp, tunnels, correlation, logins" in out.output
    assert "modules reconfigured: long_connection" in out.output
    assert "long_connection.threshold" in out.output
    wait_for(lambda: module_hosts(daemon) == {"long_connection", "scans", "template"}, 30,
             "the module hosts to follow the new config")
    assert daemon.children("sensor")[0]["pid"] == sensor_pid  # untouched by the diff
    notes = [line for n in daemon.drain_notifications() for line in n.splitlines()]
    assert any(line.startswith("MONOTONIC_USEC=") for line in notes)
    assert notes.index("RELOADING=1") < len(notes) - 1 - notes[::-1].index("READY=1")
    again = runner.invoke(app, ["reload", "--socket", str(daemon.socket)])
    assert again.output.strip() == "configuration unchanged"


def test_sighup_reloads_too(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon(live_conf())
    wait_for(lambda: "scans" in module_hosts(daemon), 30, "the live module hosts")
    drop_in(daemon, "[modules]\nenabled = scans\n")
    os.kill(daemon.proc.pid, signal.SIGHUP)  # type: ignore[union-attr]
    wait_for(lambda: module_hosts(daemon) == {"scans"}, 30, "the reload on SIGHUP")
    assert "reloaded on SIGHUP" in daemon.log_text()


def test_modules_enable_disable_restart_and_persist(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon(live_conf())
    sock = ["--socket", str(daemon.socket)]
    wait_for(lambda: "scans" in module_hosts(daemon), 30, "the live module hosts")
    listed = runner.invoke(app, ["modules", *sock])
    assert listed.exit_code == 0, listed.output
    assert "template" in listed.output and "disabled" in listed.output
    out = runner.invoke(app, ["modules", "enable", "template", *sock])
    assert out.exit_code == 0 and "template enabled" in out.output
    wait_for(lambda: "template" in module_hosts(daemon), 30, "the template host")
    out = runner.invoke(app, ["modules", "disable", "scans", "--persist", *sock])
    assert out.exit_code == 0 and "written to" in out.output
    wait_for(lambda: "scans" not in module_hosts(daemon), 30, "scans to stop")
    persisted = daemon.config.parent / "slips.d" / "90-slipsctl.conf"
    assert "template" in persisted.read_text() and "scans" not in persisted.read_text()
    pid = host_of(daemon, "arp")
    assert runner.invoke(app, ["modules", "restart", "arp", *sock]).exit_code == 0
    wait_for(lambda: host_of(daemon, "arp") not in (None, pid), 30, "arp to restart")
    bad = runner.invoke(app, ["modules", "enable", "nosuch", *sock])
    assert bad.exit_code == 1 and "unknown module 'nosuch'" in bad.output
    assert "template" in module_hosts(daemon)  # the refused change changed nothing


def live_roles(daemon: Daemon) -> tuple[Callable[[str], set[int]], dict[str, set[int]]]:
    """Once the live run is up: the pids of a role's children now, and of each role then."""
    wait_for(lambda: "long_connection" in module_hosts(daemon), 30, "the live module hosts")

    def pids(role: str) -> set[int]:
        return {c["pid"] for c in daemon.children(role) if c["pid"]}

    wait_for(lambda: pids("ingest") and pids("evidence"), 30, "the live ingest and handler")
    return pids, {role: pids(role) for role in ("sensor", "module", "ingest", "evidence")}


def test_a_changed_whitelist_restarts_only_its_readers(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon(live_conf())
    pids, before = live_roles(daemon)
    whitelist = daemon.config.parent / "whitelist.conf"  # the default place: no key changes
    whitelist.write_text("ip, 192.0.2.7\n")
    out = runner.invoke(app, ["reload", "--json", "--socket", str(daemon.socket)])
    assert out.exit_code == 0, out.output
    assert "whitelist.content" in out.output
    wait_for(lambda: pids("ingest") and pids("ingest") != before["ingest"]
             and pids("evidence") and pids("evidence") != before["evidence"], 30,
             "a new ingest and evidence handler")
    assert pids("sensor") == before["sensor"] and pids("module") == before["module"]
    again = runner.invoke(app, ["reload", "--socket", str(daemon.socket)])
    assert again.output.strip() == "configuration unchanged"


def test_a_changed_keep_windows_restarts_only_the_live_ingest(make_daemon: Any) -> None:
    # The ingest forgets what the retention sweep deletes: it must use the new value too.
    daemon: Daemon = make_daemon(live_conf())
    pids, before = live_roles(daemon)
    drop_in(daemon, "[database]\nkeep_windows = 5\n")
    out = runner.invoke(app, ["reload", "--json", "--socket", str(daemon.socket)])
    assert out.exit_code == 0, out.output
    assert "database.keep_windows" in out.output
    wait_for(lambda: pids("ingest") and pids("ingest") != before["ingest"], 30,
             "a new ingest")
    assert {role: pids(role) for role in ("sensor", "module", "evidence")} == \
        {role: before[role] for role in ("sensor", "module", "evidence")}
