"""The live flowmeter on a real interface: a port scan across a veth pair into a namespace.

A network namespace is joined to the host by a veth pair; a real slipsd captures on
the host end with ``sensor = flowmeter`` while a small Python loop inside the
namespace connects to 1000 closed ports of the host end's address, and only that
address. The test passes once slipsd raises an alert with a port scan from the
namespace's address. Root only (network namespaces, live capture): skipped otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner

from slipsctl.cli import app

from conftest import Daemon, wait_for

# The scans module reports a vertical scan at 10 and again at 100 ports; together they
# weigh 1.05, enough for an alert with the default threshold of 1.0.
SCAN_PORTS = 150
SCAN_TYPES = {"VERTICAL_PORT_SCAN", "HORIZONTAL_PORT_SCAN"}
# The namespace connects to these ports of the host end, nothing else; a closed port
# answers with a reset, an open one (unlikely) is just one flow fewer for the scan.
SCAN = """
import socket, sys
host, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for port in range(first, first + count):
    with socket.socket() as sock:
        sock.settimeout(0.2)  # bounds the scan should a firewall drop instead of reset
        try:
            sock.connect((host, port))
        except OSError:
            pass
"""


@dataclass
class Veth:
    host_if: str  # the host end, captured on
    namespace: str
    host_addr: str
    ns_addr: str


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)


def checked(*args: str) -> None:
    done = ip(*args)
    assert done.returncode == 0, f"ip {' '.join(args)}: {done.stderr.strip()}"


@pytest.fixture
def veth() -> Iterator[Veth]:
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and a live capture")
    if shutil.which("ip") is None:
        pytest.skip("the ip command (iproute2) is not installed")
    pid = os.getpid() % 16384
    # Names unique per test run (interface names have at most 15 characters), and a /30 of
    # the private 10.199.0.0/16 test range per run, so that parallel runs do not collide.
    namespace, host_if, ns_if = f"slipsns{pid}", f"slh{pid}", f"sln{pid}"
    net = f"10.199.{pid >> 6}"
    host_addr, ns_addr = f"{net}.{(pid & 63) * 4 + 1}", f"{net}.{(pid & 63) * 4 + 2}"
    added = ip("netns", "add", namespace)
    if added.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {added.stderr.strip()}")
    try:
        probe = ip("netns", "exec", namespace, "true")
        if probe.returncode != 0:
            pytest.skip(f"cannot run in a network namespace: {probe.stderr.strip()}")
        checked("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        checked("link", "set", ns_if, "netns", namespace)
        checked("addr", "add", f"{host_addr}/30", "dev", host_if)
        checked("link", "set", host_if, "up")
        checked("-n", namespace, "addr", "add", f"{ns_addr}/30", "dev", ns_if)
        checked("-n", namespace, "link", "set", ns_if, "up")
        yield Veth(host_if, namespace, host_addr, ns_addr)
    finally:
        # Deleting the host end deletes the pair; the namespace goes with its own delete.
        with contextlib.suppress(Exception):
            ip("link", "del", host_if)
        ip("netns", "del", namespace)


def scan_alerts(daemon: Daemon, attacker: str) -> list[dict[str, Any]]:
    return [e for alert in daemon.call("alerts")["alerts"] for e in alert["evidence"]
            if e["type"] in SCAN_TYPES and e["attacker"] == attacker]


def test_a_port_scan_on_a_live_interface_becomes_an_alert(make_daemon: Any, veth: Veth) -> None:
    daemon: Daemon = make_daemon(
        f"[sensors]\ninterfaces = {veth.host_if}\nsensor = flowmeter\n"
        "[profiles]\nhome_networks = 10.199.0.0/16\n",
        # Flows are logged once idle this long: 2 s instead of 30 keeps the test short.
        env={"SLIPS_FLOWMETER_IDLE_TIMEOUT": "2"})
    assert daemon.call("status")["daemon"]["live_problem"] == ""
    # "running" once alive for start_seconds (2 s): by then NFStream's meter is capturing.
    sensor = wait_for(lambda: [c for c in daemon.children("sensor") if c["state"] == "running"],
                      60, f"the flowmeter sensor on {veth.host_if}")[0]
    assert sensor["name"] == f"sensor/{veth.host_if}"
    conn_log = daemon.root / "state" / "sensors" / veth.host_if / "conn.log"

    def probe_logged() -> bool:
        # The sensor's process is up before its capture is: knock until a flow of the
        # namespace's reaches conn.log (after the 2 s idle timeout), then scan.
        subprocess.run(["ip", "netns", "exec", veth.namespace, "python3", "-c", SCAN,
                        veth.host_addr, "19999", "1"], capture_output=True, timeout=10,
                       check=False)
        return conn_log.exists() and f'"id.orig_h":"{veth.ns_addr}"' in conn_log.read_text()

    wait_for(probe_logged, 60, f"a first flow from {veth.ns_addr} in {conn_log}")
    scan = subprocess.run(
        ["ip", "netns", "exec", veth.namespace, "python3", "-c", SCAN, veth.host_addr, "20000",
         str(SCAN_PORTS)], capture_output=True, text=True, timeout=SCAN_PORTS * 0.3, check=False)
    assert scan.returncode == 0, scan.stderr
    evidence = wait_for(lambda: scan_alerts(daemon, veth.ns_addr), 90,
                        f"an alert with a port scan from {veth.ns_addr}")
    assert {e["victim"] for e in evidence if e["type"] == "VERTICAL_PORT_SCAN"} <= {
        veth.host_addr}
    shown = CliRunner().invoke(app, ["alerts", "--socket", str(daemon.socket)])
    assert shown.exit_code == 0 and f"ALERT {veth.ns_addr}" in shown.output
    assert daemon.call("hello")["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    assert [c["restarts"] for c in daemon.children("sensor")] == [0]
    assert daemon.stop() == 0
    log = daemon.log_text()
    assert "SIGTERM: stopping the capture" in log and "Traceback" not in log
