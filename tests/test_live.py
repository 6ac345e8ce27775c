"""The live run: a supervised sensor, its logs followed as they grow, alerts as they happen.

Zeek is not packaged in Debian 12, so the sensor here is tests/zeek_standin/zeek,
a stand-in with Zeek's command line that writes Zeek JSON logs into its
working directory. The test then appends a scan to that conn.log, as Zeek
would while the scan goes on.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from slipsctl.cli import app

from conftest import Daemon, wait_for

STANDIN = Path(__file__).resolve().parent / "zeek_standin" / "zeek"


def live_conf(extra: str = "") -> str:
    return (f"[sensors]\ninterfaces = standin0\nsensor = zeek\nzeek = {STANDIN}\n"
            f"[profiles]\ntime_window_width = 3600\n{extra}")


def scan_lines(scanner: str, start: float, count: int) -> str:
    return "".join(json.dumps({
        "ts": start + i * 0.1, "uid": f"CLIVESCAN{i:09d}", "id.orig_h": scanner,
        "id.orig_p": 50000 + i, "id.resp_h": f"10.9.{i // 250}.{i % 250 + 1}", "id.resp_p": 445,
        "proto": "tcp", "conn_state": "S0", "history": "S", "orig_pkts": 1, "resp_pkts": 0,
    }) + "\n" for i in range(count))


def test_live_sensor_logs_become_alerts(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon(live_conf(), env={"ZEEK_STANDIN_LINES": "5"})
    status = daemon.call("status")
    assert status["daemon"]["live_problem"] == ""
    sensor = wait_for(lambda: [c for c in daemon.children("sensor") if c["pid"]], 30,
                      "the sensor")[0]
    assert sensor["name"] == "sensor/standin0"
    live = status["runs"][0]
    assert live["source"] == "live" and live["state"] == "running"
    conn_log = daemon.root / "state" / "sensors" / "standin0" / "conn.log"
    wait_for(conn_log.exists, 30, "the stand-in's conn.log")
    with open(conn_log, "a") as out:  # a scan, written while it happens
        out.write(scan_lines("192.168.7.66", 1_700_000_100.0, 150))
    result = wait_for(lambda: daemon.call("alerts")["alerts"], 60, "a live alert")
    assert result[0]["profile"] == "192.168.7.66"
    assert "HORIZONTAL_PORT_SCAN" in {e["type"] for e in result[0]["evidence"]}
    out = CliRunner().invoke(app, ["alerts", "--socket", str(daemon.socket)])
    assert out.exit_code == 0 and "ALERT 192.168.7.66" in out.output
    alerts_log = Path(live["output"]) / "alerts.log"
    assert " ALERT 192.168.7.66 " in alerts_log.read_text()
    assert "checksum" in daemon.log_text()  # the sensor's warning reached the log
    # A killed ingest resumes where it stopped: no flow is counted twice.
    ingest = daemon.children("ingest")[0]
    os.kill(ingest["pid"], signal.SIGKILL)
    wait_for(lambda: any(c["restarts"] == 1 and c["pid"] for c in daemon.children("ingest")),
             30, "the ingest restart")
    with open(conn_log, "a") as out:
        out.write(scan_lines("192.168.7.67", 1_700_000_200.0, 3))
    from slipsd.store import Store

    store = Store(daemon.redis(), live["id"])
    wait_for(lambda: store.stats().get("events.new_flow", 0) == 5 + 150 + 3, 30,
             "the new lines, and only them, after the restart")


def test_sensor_that_keeps_crashing_goes_fatal(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon(
        live_conf("[supervision]\nbackoff_initial = 0.05\nbackoff_max = 0.1\nfatal_after = 3\n"),
        env={"ZEEK_STANDIN_MODE": "crash"})
    sensor = wait_for(lambda: [c for c in daemon.children("sensor") if c["state"] == "fatal"],
                      60, "the sensor to go fatal")[0]
    assert sensor["restarts"] == 2 and sensor["last_exit"] == "exit status 1"
    out = CliRunner().invoke(app, ["status", "--socket", str(daemon.socket)])
    assert "sensor/standin0" in out.output and "fatal" in out.output
    assert daemon.call("hello")["pid"] == daemon.proc.pid  # type: ignore[union-attr]


def test_live_needs_a_sensor_it_can_run(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon("[sensors]\ninterfaces = eth9\nsensor = flowmeter\n")
    problem = daemon.call("status")["daemon"]["live_problem"]
    assert "flowmeter" in problem and "live" in problem
    assert daemon.children("sensor") == []


def test_captures_are_read_with_zeek_when_configured(make_daemon: Any, tmp_path: Path) -> None:
    import sys

    from slipsd import protocol

    repo = Path(__file__).resolve().parents[1]
    # The stand-in's -r mode runs under the virtualenv's python (it meters with NFStream).
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    conf = f"[sensors]\nsensor = zeek\nzeek = {STANDIN}\n"
    good: Daemon = make_daemon(conf, name="good", env={"PATH": path})
    run = good.analyze(repo / "samples" / "demo.pcap", tmp_path / "good")
    assert run["summary"]["flows"] > 100 and run["summary"]["bad_lines"] == 0
    broken: Daemon = make_daemon(conf, name="broken",
                                 env={"PATH": path, "ZEEK_STANDIN_MODE": "crash"})
    try:
        broken.analyze(repo / "samples" / "demo.pcap", tmp_path / "broken")
    except protocol.ProtocolError as exc:
        assert "zeek -r failed: fatal error" in exc.message  # zeek, not the flowmeter
    else:
        raise AssertionError("a zeek that fails must fail the analysis")
