"""slipsd's sd_notify sequence as systemd sees it: READY, STATUS, WATCHDOG, STOPPING."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from slipsd.notify import watchdog_interval

import zeekgen
from conftest import Daemon, module_dirs_conf, wait_for


def receive(daemon: Daemon) -> list[str]:
    """Datagrams that reached the daemon's notify socket since the last call, appended
    to ``daemon.notifications`` (the fixture's socket has a 50 ms timeout)."""
    got = []
    while True:
        try:
            got.append(daemon._notify.recv(4096).decode())
        except TimeoutError:
            break
    daemon.notifications.extend(got)
    return got


def lines(daemon: Daemon) -> list[str]:
    return [line for message in daemon.notifications for line in message.splitlines()]


def wait_for_line(daemon: Daemon, wanted: str, timeout: float = 10.0) -> str:
    def seen() -> str | None:
        receive(daemon)
        return next((line for line in lines(daemon) if line.startswith(wanted)), None)

    return wait_for(seen, timeout, f"{wanted!r} on the notify socket")  # type: ignore[no-any-return]


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode(errors="replace").split("\0")
                if "=" in entry)


def test_ready_status_watchdog_stopping_in_order(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon(env={"WATCHDOG_USEC": "200000"})
    ready = [m for m in daemon.notifications if "READY=1" in m.splitlines()]
    assert ready and f"STATUS=serving on {daemon.socket}; runs: 0; modules: " in ready[0]
    started = time.monotonic()
    wait_for_line(daemon, "WATCHDOG=1", timeout=5)
    assert time.monotonic() - started < 2  # every 100 ms (half of WATCHDOG_USEC)

    def pings() -> int:
        receive(daemon)
        return sum(line == "WATCHDOG=1" for line in lines(daemon))

    wait_for(lambda: pings() >= 3, 5, "more WATCHDOG=1 pings")
    assert daemon.stop() == 0
    seen = lines(daemon)
    first = {key: next(i for i, line in enumerate(seen) if line.startswith(key))
             for key in ("READY=1", "STATUS=", "WATCHDOG=1", "STOPPING=1")}
    assert first["READY=1"] < first["STATUS="] < first["WATCHDOG=1"] < first["STOPPING=1"]
    assert "WATCHDOG=1" not in seen[first["STOPPING=1"]:]  # no pings once stopping


def test_status_is_refreshed_when_a_run_starts(make_daemon: Any, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon(env={"WATCHDOG_USEC": "200000"})
    (tmp_path / "in").mkdir()
    zeekgen.write_conn_log(str(tmp_path / "in" / "conn.log"), zeekgen.make_conn_flows(20))
    daemon.analyze(tmp_path / "in" / "conn.log", tmp_path / "out")
    wait_for_line(daemon, f"STATUS=serving on {daemon.socket}; runs: 1;")


def test_no_watchdog_pings_unless_asked(make_daemon: Any, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon(env={"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"})
    # An analysis takes several 100 ms ping intervals; its STATUS update marks its end.
    (tmp_path / "in").mkdir()
    zeekgen.write_conn_log(str(tmp_path / "in" / "conn.log"), zeekgen.make_conn_flows(20))
    daemon.analyze(tmp_path / "in" / "conn.log", tmp_path / "out")
    wait_for_line(daemon, f"STATUS=serving on {daemon.socket}; runs: 1;")
    assert "WATCHDOG=1" not in lines(daemon)  # the pings were meant for another process


def test_children_do_not_see_the_notify_socket(make_daemon: Any, tmp_path: Path) -> None:
    conf = module_dirs_conf("flow_counter", "[bus]\nmax_lag = 2\n")
    daemon: Daemon = make_daemon(conf, env={"WATCHDOG_USEC": "200000"})
    assert daemon.proc is not None
    assert "NOTIFY_SOCKET" in environ(daemon.proc.pid)  # the checks below mean something
    (tmp_path / "in").mkdir()
    zeekgen.write_conn_log(str(tmp_path / "in" / "conn.log"), zeekgen.make_conn_flows(5000))
    worker = threading.Thread(
        target=lambda: daemon.analyze(tmp_path / "in" / "conn.log", tmp_path / "out"))
    worker.start()
    host = wait_for(lambda: next((c for c in daemon.children("module") if c["pid"]), None),
                    30, "a module host")
    os.kill(host["pid"], signal.SIGSTOP)  # the run waits for it: every child stays put
    try:
        # redis-server overwrites its environment block (process title); the others don't.
        envs = {c["name"]: environ(c["pid"]) for c in daemon.children() if c["pid"]}
    finally:
        os.kill(host["pid"], signal.SIGCONT)
    worker.join(120)
    assert envs[host["name"]], "the module host's environment is unreadable"
    for name, env in envs.items():
        for variable in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            assert variable not in env, f"{name} sees {variable}"


@pytest.mark.parametrize(("usec", "pid", "expected"), [
    ("", "", None),
    ("30000000", "", 15.0),
    ("30000000", "self", 15.0),
    ("30000000", "1", None),
    ("0", "", None),
    ("soon", "", None),
])
def test_watchdog_interval(monkeypatch: pytest.MonkeyPatch,
                           usec: str, pid: str, expected: float | None) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value:
            monkeypatch.setenv(name, str(os.getpid()) if value == "self" else value)
        else:
            monkeypatch.delenv(name, raising=False)
    assert watchdog_interval() == expected


def test_a_notify_reader_that_stops_reading_never_stalls_slipsd(make_daemon: Any,
                                                                 tmp_path: Path) -> None:
    daemon: Daemon = make_daemon(env={"WATCHDOG_USEC": "200000"})
    # Fill the notify socket's queue, as a wedged service manager would leave it.
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.setblocking(False)
    queued = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            filler.sendto(b"X=1", str(daemon.root / "notify.sock"))
            queued += 1
    filler.close()
    assert queued > 0
    (tmp_path / "in").mkdir()
    zeekgen.write_conn_log(str(tmp_path / "in" / "conn.log"), zeekgen.make_conn_flows(200))
    # An analysis spans many 100 ms watchdog pings that find the queue full.
    fd = os.open(tmp_path / "in" / "conn.log", os.O_RDONLY)
    try:
        with daemon.client(timeout=60) as client:
            run = client.call("analyze", {"name": "conn.log"}, fds=[fd])
    finally:
        os.close(fd)
    assert run["state"] == "finished"
    assert daemon.call("status")["daemon"]["pid"] == daemon.proc.pid  # type: ignore[union-attr]
