"""The zeek sensor: finding zeek, choosing the sensor, and zeek supervised for real.

Zeek is not packaged in Debian 12, so these tests run tests/zeek_standin/zeek, a
stand-in that takes Zeek's command line and writes Zeek-format logs (see its
docstring). The Zeek script etc/zeek/slips.zeek is not exercised here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dpkt  # type: ignore[import-untyped]
import pytest

from slipsd.sensors.zeek import (
    SensorError,
    choose_sensor,
    find_zeek,
    live_spec,
    read_argv,
    scripts_dir,
)
from slipsd.supervision import Child, Policy, ProcessSpec, Restart, State, Supervisor

STANDIN = Path(__file__).resolve().parent / "zeek_standin" / "zeek"
SCRIPTS = Path(__file__).resolve().parents[1] / "etc" / "zeek"
FAST = Policy(backoff_initial=0.01, backoff_max=0.05, start_seconds=0.5, fatal_after=3,
              stop_timeout=5.0)


def standin_env(**extra: str) -> dict[str, str]:
    # The stand-in runs under "#!/usr/bin/env python3": this interpreter's folder goes
    # first on PATH so that it finds the same Python, with slipsd's dependencies.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, "PATH": path, **extra}


async def until(condition: Callable[[], Any], timeout: float = 30.0,
                what: str = "condition") -> Any:
    """Poll ``condition`` on the event loop until it is truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
    return result


def conn_lines(folder: Path) -> list[dict[str, Any]]:
    path = folder / "conn.log"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def sensor_spec(tmp_path: Path, interface: str = "eth-test0", **env: str) -> ProcessSpec:
    spec = live_spec(str(STANDIN), interface, tmp_path / "sensors" / interface,
                     bpf_filter="", tcp_inactivity_timeout=3600, scripts=SCRIPTS)
    return dataclasses.replace(spec, env=standin_env(**env))


# --- find_zeek ----------------------------------------------------------------------


@pytest.fixture
def path_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """PATH is one empty folder: what it holds is all that PATH offers."""
    folder = tmp_path / "path"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    return folder


def test_configured_zeek_comes_first(path_dir: Path) -> None:
    shutil.copy(STANDIN, path_dir / "zeek")
    assert find_zeek(str(STANDIN), fallbacks=()) == str(STANDIN)


def test_configured_name_is_looked_up_on_path(path_dir: Path) -> None:
    shutil.copy(STANDIN, path_dir / "zeek-6")
    assert find_zeek("zeek-6", fallbacks=(str(STANDIN),)) == str(path_dir / "zeek-6")


def test_zeek_on_path_before_fallbacks(path_dir: Path) -> None:
    shutil.copy(STANDIN, path_dir / "zeek")
    assert find_zeek("", fallbacks=(str(STANDIN),)) == str(path_dir / "zeek")


def test_fallbacks_in_order(path_dir: Path, tmp_path: Path) -> None:
    not_executable = tmp_path / "plain"
    not_executable.write_text("")
    fallbacks = (str(tmp_path / "absent"), str(not_executable), str(STANDIN))
    assert find_zeek("", fallbacks=fallbacks) == str(STANDIN)


def test_nothing_found_is_none(path_dir: Path, tmp_path: Path) -> None:
    assert find_zeek("", fallbacks=(str(tmp_path / "absent"),)) is None


def test_bad_configured_zeek_is_an_error(path_dir: Path, tmp_path: Path) -> None:
    shutil.copy(STANDIN, path_dir / "zeek")  # found on PATH, but not what was asked for
    with pytest.raises(SensorError, match=r"\[sensors\] zeek = .*absent: no such file"):
        find_zeek(str(tmp_path / "absent"))
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(SensorError, match=r"\[sensors\] zeek .*not an executable file"):
        find_zeek(str(plain))
    with pytest.raises(SensorError, match=r"\[sensors\] zeek = zeek-9: not found on PATH"):
        find_zeek("zeek-9")


def test_shipped_scripts_folder_holds_slips_zeek() -> None:
    assert (scripts_dir() / "slips.zeek").is_file()


# --- choose_sensor ------------------------------------------------------------------


def test_choose_sensor() -> None:
    assert choose_sensor("auto", "/opt/zeek/bin/zeek") == "zeek"
    assert choose_sensor("auto", None) == "flowmeter"
    assert choose_sensor("zeek", "/opt/zeek/bin/zeek") == "zeek"
    assert choose_sensor("flowmeter", "/opt/zeek/bin/zeek") == "flowmeter"
    assert choose_sensor("flowmeter", None) == "flowmeter"
    with pytest.raises(SensorError, match=r"sensor = zeek, but no zeek program was found"):
        choose_sensor("zeek", None)
    with pytest.raises(SensorError, match=r"sensor = argus"):
        choose_sensor("argus", None)


# --- command lines ------------------------------------------------------------------


def test_live_spec(tmp_path: Path) -> None:
    log_dir = tmp_path / "out" / "eth0"
    spec = live_spec("/opt/zeek/bin/zeek", "eth0", log_dir, bpf_filter="not port 22",
                     tcp_inactivity_timeout=300, scripts=Path("/usr/share/slips/zeek"))
    assert list(spec.argv) == [
        "/opt/zeek/bin/zeek", "-C", "-i", "eth0", "-f", "not port 22",
        "LogAscii::use_json=T", "tcp_inactivity_timeout=300sec",
        "/usr/share/slips/zeek/slips.zeek",
    ]
    assert spec.name == "sensor/eth0" and spec.role == "sensor"
    assert spec.cwd == str(log_dir) and log_dir.is_dir()
    assert spec.log_output and spec.restart is Restart.ALWAYS and spec.stop_order == 5


def test_live_spec_without_filter(tmp_path: Path) -> None:
    spec = live_spec("zeek", "wlan0", tmp_path / "wlan0", bpf_filter="",
                     tcp_inactivity_timeout=90.5, scripts=SCRIPTS)
    assert "-f" not in spec.argv
    assert "tcp_inactivity_timeout=90.5sec" in spec.argv
    assert spec.argv[:4] == ["zeek", "-C", "-i", "wlan0"]


def test_read_argv() -> None:
    assert read_argv("zeek", Path("/data/x.pcap"), SCRIPTS) == [
        "zeek", "-C", "-r", "/data/x.pcap", "LogAscii::use_json=T", str(SCRIPTS / "slips.zeek")]


# --- supervised stand-in ------------------------------------------------------------


def test_live_sensor_writes_logs_and_its_warnings_are_logged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = sensor_spec(tmp_path, ZEEK_STANDIN_LINES="7", ZEEK_STANDIN_SRC="10.1.2.3")
    folder = Path(spec.cwd or "")
    logger = "slipsd.child.sensor/eth-test0"

    def warned() -> bool:
        return any(r.name == logger and "checksum offloading" in r.getMessage()
                   for r in caplog.records)

    async def scenario() -> None:
        sup = Supervisor(FAST)
        child = sup.start(spec)
        try:
            await until(lambda: len(conn_lines(folder)) == 7, what="7 conn.log lines")
            await until(warned, what="the stand-in's warning in the log")
            await until(lambda: child.state is State.RUNNING, what="state running")
            assert (child.restarts, child.last_exit) == (0, "")
        finally:
            await sup.stop_all()
        assert child.state is State.EXITED and child.last_exit == "exit status 0"

    with caplog.at_level("WARNING"):
        asyncio.run(asyncio.wait_for(scenario(), 60))
    records = conn_lines(folder)
    assert [r["ts"] for r in records] == [1_700_000_000 + i for i in range(7)]
    assert {r["id.orig_h"] for r in records} == {"10.1.2.3"}
    assert len({r["uid"] for r in records}) == 7
    assert records[0]["id.resp_h"] == "198.51.100.1"


def test_sensor_that_crashes_once_is_restarted(tmp_path: Path) -> None:
    marker = tmp_path / "crashed"
    spec = sensor_spec(tmp_path, ZEEK_STANDIN_MODE="crash-after", ZEEK_STANDIN_LINES="3",
                       ZEEK_STANDIN_CRASH_ONCE=str(marker))
    folder = Path(spec.cwd or "")
    states: list[str] = []

    async def scenario() -> Child:
        sup = Supervisor(FAST, on_change=lambda c: states.append(str(c.state)))
        child = sup.start(spec)
        try:
            await until(lambda: child.restarts == 1 and child.state is State.RUNNING,
                        what="restarted and running")
            # Appended, as Zeek's log writer would not: the stand-in's choice, so that
            # both runs' lines can be counted.
            await until(lambda: len(conn_lines(folder)) == 6, what="both runs' lines")
        finally:
            await sup.stop_all()
        return child

    child = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert marker.exists()
    assert child.restarts == 1
    assert "backoff" in states
    assert child.state is State.EXITED  # stopped by us, not given up on


def test_sensor_that_keeps_crashing_goes_fatal(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    spec = sensor_spec(tmp_path, ZEEK_STANDIN_MODE="crash")
    # Generous start_seconds: each crash must count as quick even on a loaded machine.
    policy = dataclasses.replace(FAST, start_seconds=10.0)

    async def scenario() -> tuple[Child, list[dict[str, Any]]]:
        sup = Supervisor(policy)
        child = sup.start(spec)
        await asyncio.wait_for(child.wait(), 60)
        return child, sup.status()

    with caplog.at_level("WARNING"):
        child, status = asyncio.run(scenario())
    assert child.state is State.FATAL
    assert child.restarts == policy.fatal_after - 1
    assert child.last_exit == "exit status 1"
    assert status == [{**status[0], "name": "sensor/eth-test0", "role": "sensor",
                       "state": "fatal", "pid": None, "last_exit": "exit status 1"}]
    errors = [r.getMessage() for r in caplog.records
              if r.name == "slipsd.child.sensor/eth-test0"]
    assert len(errors) == policy.fatal_after
    assert all("problem with interface eth-test0" in e for e in errors)


# --- zeek -r ------------------------------------------------------------------------


def small_pcap(path: Path) -> Path:
    """One TCP session, 10.0.0.1:40000 -> 10.0.0.2:80, handshake, data, FIN both ways."""
    mac = bytes.fromhex("020000000001"), bytes.fromhex("0200000000fe")
    steps = [("c", dpkt.tcp.TH_SYN, b""), ("s", dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, b""),
             ("c", dpkt.tcp.TH_ACK, b""), ("c", dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK, b"hello"),
             ("s", dpkt.tcp.TH_ACK, b""), ("c", dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, b""),
             ("s", dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, b""), ("c", dpkt.tcp.TH_ACK, b"")]
    seq = {"c": 1000, "s": 5000}
    with open(path, "wb") as out:
        writer = dpkt.pcap.Writer(out)
        for i, (who, flags, data) in enumerate(steps):
            other = "s" if who == "c" else "c"
            src, dst = ("10.0.0.1", "10.0.0.2") if who == "c" else ("10.0.0.2", "10.0.0.1")
            sport, dport = (40000, 80) if who == "c" else (80, 40000)
            segment = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq[who], ack=seq[other],
                                   flags=flags, win=65535, data=data)
            seq[who] += len(data) + bool(flags & (dpkt.tcp.TH_SYN | dpkt.tcp.TH_FIN))
            packet = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=6,
                                ttl=64, data=segment)
            packet.len = 20 + len(bytes(segment))
            eth = dpkt.ethernet.Ethernet(src=mac[who == "s"], dst=mac[who == "c"],
                                         type=dpkt.ethernet.ETH_TYPE_IP, data=packet)
            writer.writepkt(bytes(eth), 1_700_000_000 + i / 100)
    return path


def test_read_argv_through_the_standin(tmp_path: Path) -> None:
    capture = small_pcap(tmp_path / "small.pcap")
    out = tmp_path / "logs"
    out.mkdir()
    proc = subprocess.run(read_argv(str(STANDIN), capture, SCRIPTS), cwd=out,
                          env=standin_env(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    (conn,) = conn_lines(out)
    assert (conn["id.orig_h"], conn["id.orig_p"], conn["id.resp_h"], conn["id.resp_p"]) == (
        "10.0.0.1", 40000, "10.0.0.2", 80)
    assert conn["proto"] == "tcp" and conn["orig_bytes"] == 5
