"""SIGTERM in child processes: the handler takes no lock, so repeated signals (slipsd and
systemd both stopping a child) cannot deadlock a main thread waiting on an event."""

from __future__ import annotations

import signal
import subprocess
import sys

from conftest import REPO

WAITER = """
import threading
from slipsd.stopsignal import StopOnSigterm
stop = threading.Event()
StopOnSigterm(stop.set)
print("ready", flush=True)
while not stop.wait(0.0005):  # the main thread is inside the event's wait nearly always
    pass
print("stopped", flush=True)
"""


def test_a_burst_of_sigterms_stops_a_waiting_process() -> None:
    proc = subprocess.Popen([sys.executable, "-c", WAITER], stdout=subprocess.PIPE, text=True,
                            cwd=REPO)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == "ready\n"
        for _ in range(200):
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert proc.stdout.read() == "stopped\n"
    finally:
        proc.kill()
        proc.wait()
