"""slipsctl through typer's CliRunner, against real daemons."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from slipsctl.cli import app, progress_line
from slipsd.protocol import COMMANDS

from conftest import REPO, Daemon, module_dirs_conf, wait_for

runner = CliRunner()


def private_daemons() -> list[int]:
    """Pids of slipsd processes started by slipsctl for one job."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"slipsd" in cmdline and any(b"runtime_dir=/tmp/slipsd-" in a for a in cmdline):
            pids.append(int(entry.name))
    return pids


def test_status_without_daemon_exits_3(tmp_path: Path) -> None:
    result = runner.invoke(app, ["status", "--socket", str(tmp_path / "none.sock")])
    assert result.exit_code == 3
    assert "slipsd is not running (no socket at" in result.output


def test_status_shows_children(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon()
    result = runner.invoke(app, ["status", "--socket", str(daemon.socket)])
    assert result.exit_code == 0, result.output
    assert "redis" in result.output and "running" in result.output
    as_json = runner.invoke(app, ["status", "--json", "--socket", str(daemon.socket)])
    data = json.loads(as_json.output)
    assert data["daemon"]["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    assert data["redis"]["up"] is True


def test_status_lists_the_modules_of_each_host(make_daemon: Any) -> None:
    from test_live import live_conf

    conf = live_conf(module_dirs_conf("long_connection, scans, arp, raiser",
                                      "processes = 1\n"))
    daemon: Daemon = make_daemon(conf)
    wait_for(lambda: len([c for c in daemon.children("module") if c["pid"]]) == 2, 30,
             "the live module hosts")
    result = runner.invoke(app, ["status", "--socket", str(daemon.socket)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # The three shipped modules share one host, the test module has its own.
    shared = next(i for i, line in enumerate(lines) if "/module/(3 modules)" in line)
    assert "lag 0" in lines[shared]
    assert [line.split()[0] for line in lines[shared + 1:shared + 4]] == [
        "long_connection", "scans", "arp"]
    assert "processed 0, errors 0" in lines[shared + 1]
    assert any(line.split()[0].endswith("/module/raiser") for line in lines if line.strip())


def test_analyze_json_through_a_running_daemon(make_daemon: Any, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon()
    result = runner.invoke(app, ["analyze", str(REPO / "samples" / "demo-zeek"), "--json",
                                 "--output", str(tmp_path / "out"),
                                 "--socket", str(daemon.socket)])
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)
    assert run["output"] == str(tmp_path / "out")
    assert run["summary"]["alerts"] >= 1
    assert (tmp_path / "out" / "alerts.json").is_file()


def test_analyze_without_daemon_starts_a_private_one(tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", str(REPO / "samples" / "demo-zeek"),
                                 "--output", str(tmp_path / "out"),
                                 "--socket", str(tmp_path / "absent.sock")])
    assert result.exit_code == 0, result.output
    assert "starting a private one for this job" in result.output
    assert "LONG_CONNECTION" in result.output and "alerts 2" in result.output
    assert (tmp_path / "out" / "alerts.log").read_text().count(" ALERT ") == 2
    assert private_daemons() == []


def test_analyze_reports_unreadable_and_foreign_input(make_daemon: Any, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon()
    missing = runner.invoke(app, ["analyze", str(tmp_path / "nope"),
                                  "--socket", str(daemon.socket)])
    assert missing.exit_code == 1
    assert "cannot open" in missing.output and "nope" in missing.output
    foreign = tmp_path / "notes.txt"
    foreign.write_text("hello\nworld\n")
    result = runner.invoke(app, ["analyze", str(foreign), "--socket", str(daemon.socket)])
    assert result.exit_code == 1
    assert "not an input slips can read" in result.output
    assert daemon.call("hello")["pid"] == daemon.proc.pid  # type: ignore[union-attr]


def test_help_comes_from_the_command_table() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("status", "analyze", "stop"):
        assert name in result.output
    assert COMMANDS["analyze"].help.split(";")[0][:30] in " ".join(result.output.split())


def test_progress_line_tracks_reading_then_detecting() -> None:
    reading = progress_line({"stage": "reading", "events": 50, "total_lines": 100,
                             "modules": {"a": 10}})
    assert "50%" in reading and "reading" in reading
    detecting = progress_line({"stage": "detecting", "events": 100, "total_lines": 100,
                               "modules": {"a": 25, "b": 80}})
    assert "25%" in detecting and "detecting" in detecting


def test_analyze_zeek_json_from_standard_input(make_daemon: Any) -> None:
    import subprocess
    import sys

    daemon: Daemon = make_daemon()
    data = (REPO / "samples" / "demo-zeek" / "conn.log").read_bytes()
    data += (REPO / "samples" / "demo-zeek" / "dns.log").read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "slipsctl", "analyze", "-", "--json",
         "--socket", str(daemon.socket)],
        input=data, capture_output=True, timeout=120)  # a pipe, as `zeek ... |` gives
    assert proc.returncode == 0, proc.stderr.decode()
    run = json.loads(proc.stdout)
    assert run["source"] == "stdin"
    assert run["summary"]["flows"] == 366 and run["summary"]["bad_lines"] == 0
    assert run["summary"]["evidence_by_type"]["LONG_CONNECTION"] == 8


def test_unwritable_output_folder_is_a_clear_error(make_daemon: Any, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["analyze", str(REPO / "samples" / "demo.pcap"),
                                 "--output", str(blocker / "out"),
                                 "--socket", str(daemon.socket)])
    assert result.exit_code == 1
    assert "not started: cannot create the output folder" in result.output
    assert daemon.call("hello")["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    folder = f"/proc/{daemon.proc.pid}/fd"  # type: ignore[union-attr]
    targets = []
    for fd in os.listdir(folder):
        with contextlib.suppress(FileNotFoundError):  # closed while we looked
            targets.append(os.readlink(f"{folder}/{fd}"))
    assert not any(t.endswith("demo.pcap") for t in targets)  # the passed fd was closed


def test_shell_completion_knows_the_commands() -> None:
    import subprocess
    import sys

    env = {**os.environ, "_SLIPSCTL_COMPLETE": "complete_bash", "COMP_CWORD": "2",
           "COMP_WORDS": "slipsctl modules en"}
    proc = subprocess.run([sys.executable, "-m", "slipsctl"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.split() == ["enable"]
    env.update(COMP_CWORD="1", COMP_WORDS="slipsctl st")
    proc = subprocess.run([sys.executable, "-m", "slipsctl"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.split() == ["status", "stop"]
