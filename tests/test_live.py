"""The live run: a supervised sensor, its logs followed as they grow, alerts as they happen.

The live flowmeter's capture on a real interface is tested in test_live_netns.py
(root only); here its writing is checked on captures metered as it meters live.

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

import dpkt  # type: ignore[import-untyped]
import pytest
from typer.testing import CliRunner

from slipsctl.cli import app
from slipsd.config import ConfigError
from slipsd.sensors._flowmeter_plugin import ZeekTracker
from slipsd.sensors.flowmeter import STREAMER_OPTIONS
from slipsd.sensors.flowmeter_live import EX_NOINPUT, IDLE_TIMEOUT_ENV, LiveLogs, idle_timeout

from conftest import Daemon, wait_for
from pcap_capture import T0, Capture

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


def follow_alerts(daemon: Daemon, conn_log: Path) -> None:
    """slipsctl alerts --follow prints the alerts there are, then new ones as they come."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "slipsctl", "alerts", "--follow",
                             "--socket", str(daemon.socket)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []

        def until(text: str) -> bool:
            while not any(text in line for line in lines):
                line = proc.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    return False
                lines.append(line)
            return True

        assert until("ALERT 192.168.7.66")
        with open(conn_log, "a") as out:  # a second scanner, while we follow
            out.write(scan_lines("192.168.7.77", 1_700_000_150.0, 150))
        assert until("ALERT 192.168.7.77")
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


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
    follow_alerts(daemon, conn_log)
    assert daemon.call("status")["runs"][0]["alerts"] >= 2
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
    wait_for(lambda: store.stats().get("events.new_flow", 0) == 5 + 150 + 150 + 3, 30,
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


def test_live_flowmeter_on_a_missing_interface_goes_fatal(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon(
        "[sensors]\ninterfaces = slipsnoif0\nsensor = flowmeter\n"
        # start_seconds: every crash counts as quick, however slowly NFStream starts
        # on a busy machine before it finds the interface missing.
        "[supervision]\nbackoff_initial = 0.05\nbackoff_max = 0.1\nfatal_after = 3\n"
        "start_seconds = 30\n")
    assert daemon.call("status")["daemon"]["live_problem"] == ""
    sensor = wait_for(lambda: [c for c in daemon.children("sensor") if c["state"] == "fatal"],
                      60, "the flowmeter sensor to go fatal")[0]
    assert sensor["name"] == "sensor/slipsnoif0"
    assert sensor["restarts"] == 2 and sensor["last_exit"] == f"exit status {EX_NOINPUT}"
    assert "cannot capture on slipsnoif0: no such network interface" in daemon.log_text()
    assert "Traceback" not in daemon.log_text()
    assert daemon.call("hello")["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    wait_for(lambda: [c["state"] for c in daemon.children("ingest")] == ["running"], 30,
             "the live ingest to run on without its sensor")


def test_flowmeter_idle_timeout_from_the_environment() -> None:
    assert idle_timeout({}) == 30
    assert idle_timeout({IDLE_TIMEOUT_ENV: " 2 "}) == 2
    for bad in ("0", "1.5", "soon"):
        with pytest.raises(ConfigError, match=IDLE_TIMEOUT_ENV):
            idle_timeout({IDLE_TIMEOUT_ENV: bad})


def meter_as_live(cap: Capture, tmp_path: Path, active_timeout: int) -> LiveLogs:
    """A capture through NFStream and the plugin as the live flowmeter meters an interface,
    each flow handed to LiveLogs as it ends (at monotonic time 0)."""
    import nfstream  # type: ignore[import-untyped]

    logs = LiveLogs(tmp_path, dhcp_quiet=35.0)
    affinity = os.sched_getaffinity(0)  # NFStream pins its caller to one CPU
    try:
        streamer = nfstream.NFStreamer(
            source=str(cap.write(tmp_path / "live.pcap")), idle_timeout=30,
            active_timeout=active_timeout, udps=[ZeekTracker()], **STREAMER_OPTIONS)
        for flow in streamer:
            logs.add_flow(flow, 0.0)
    finally:
        os.sched_setaffinity(0, affinity)
    return logs


def test_a_connection_cut_by_the_active_timeout_keeps_its_originator(tmp_path: Path) -> None:
    (tmp_path / "conn.log").write_text('{"ts":1,"uid":"Cold"}\n')  # a restarted sensor's
    cap = Capture()
    client, server = ("10.0.0.1", 40010), ("10.0.0.2", 443)
    cap.tcp(T0, *client, *server, "S")
    cap.tcp(T0 + 0.001, *server, *client, "SA")
    cap.tcp(T0 + 0.002, *client, *server, "A")
    # After the active timeout the server speaks first: NFStream's next flow starts with it.
    cap.tcp(T0 + 1.5, *server, *client, "PA", b"x" * 100)
    cap.tcp(T0 + 1.501, *client, *server, "A")
    meter_as_live(cap, tmp_path, active_timeout=1).close()
    old, first, rest = (json.loads(line) for line in
                        (tmp_path / "conn.log").read_text().splitlines())
    assert old["uid"] == "Cold"  # appended to, never truncated
    assert (first["id.orig_h"], first["id.orig_p"], first["history"], first["conn_state"]) == (
        *client, "ShA", "S1")
    assert (rest["id.orig_h"], rest["id.orig_p"], rest["id.resp_h"], rest["id.resp_p"]) == (
        *client, *server)
    assert (rest["history"], rest["conn_state"], rest["orig_bytes"], rest["resp_bytes"]) == (
        "^dA", "OTH", 0, 100)
    assert rest["ts"] == pytest.approx(T0 + 1.5) and rest["uid"] != first["uid"]


def test_a_dhcp_exchange_is_written_once_quiet(tmp_path: Path) -> None:
    cap = Capture()
    mac = bytes.fromhex("020000000033") + bytes(10)
    for i, (src, op, kind) in enumerate([("0.0.0.0", 1, 1), ("10.0.0.254", 2, 2),
                                         ("0.0.0.0", 1, 3), ("10.0.0.254", 2, 5)]):
        msg = dpkt.dhcp.DHCP(op=op, xid=0xCAFE, chaddr=mac, opts=[(53, bytes([kind]))])
        ports = (68, 67) if op == 1 else (67, 68)
        cap.udp(T0 + i / 100, src, ports[0], "255.255.255.255", ports[1], bytes(msg))
    logs = meter_as_live(cap, tmp_path, active_timeout=300)
    assert not (tmp_path / "dhcp.log").exists()  # its flows came at 0, now is 0: not quiet yet
    logs.flush_dhcp(36.0)
    logs.close()
    (rec,) = (json.loads(line) for line in (tmp_path / "dhcp.log").read_text().splitlines())
    assert rec["msg_types"] == ["DISCOVER", "OFFER", "REQUEST", "ACK"]
    assert len(rec["uids"]) == 2 and rec["mac"] == "02:00:00:00:00:33"


def test_a_live_run_trims_what_every_reader_acknowledged(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon(live_conf("[bus]\nbatch_size = 10\n"))
    live = daemon.call("status")["runs"][0]
    conn_log = daemon.root / "state" / "sensors" / "standin0" / "conn.log"
    wait_for(conn_log.exists, 30, "the stand-in's conn.log")
    with open(conn_log, "a") as out:  # 60 batches of 10 flows, and a scan's evidence
        out.write(scan_lines("192.168.7.66", 1_700_000_100.0, 600))
    from slipsd.store import Store

    store = Store(daemon.redis(), live["id"])
    wait_for(lambda: store.stats().get("events.new_flow", 0) >= 600, 30, "the 600 flows")
    redis = daemon.redis()
    flows = f"slips:{{{live['id']}}}:stream:new_flow"
    evidence = f"slips:{{{live['id']}}}:stream:evidence_added"
    wait_for(lambda: redis.xlen(flows) <= 2 and redis.xlen(evidence) <= 2, 60,
             "the acknowledged entries to be trimmed")
    assert daemon.call("alerts")["alerts"]  # nothing was lost on the way
