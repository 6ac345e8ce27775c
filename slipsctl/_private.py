"""A private slipsd for one job, when no daemon is running.

It gets its own runtime directory (so its socket and embedded Redis clash
with nothing) and reports readiness over a notify socket of ours, exactly as
it would to systemd.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from slipsd.protocol import SOCKET_NAME

READY_TIMEOUT = 60.0


def _stop_with_parent() -> None:
    # In the child before exec: if slipsctl dies, even by SIGKILL, the private
    # daemon gets SIGTERM and shuts its children down instead of lingering.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class PrivateDaemonError(Exception):
    pass


class PrivateDaemon:
    def __init__(self, output_dir: Path, config: Path | None = None) -> None:
        self.output_dir = output_dir
        self.config = config
        self.runtime = Path(tempfile.mkdtemp(prefix="slipsd-"))
        self.socket_path = self.runtime / SOCKET_NAME
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.runtime / "slipsd.log"

    def start(self) -> None:
        notify_path = self.runtime / "notify.sock"
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(notify_path))
        argv = [sys.executable, "-m", "slipsd",
                "--set", f"daemon.runtime_dir={self.runtime}",
                "--set", f"daemon.state_dir={self.runtime / 'state'}",
                "--set", f"output.directory={self.output_dir}"]
        if self.config is not None:
            argv += ["--config", str(self.config)]
        env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_stop_with_parent)
        try:
            self._wait_ready(notify)
        finally:
            notify.close()

    def _wait_ready(self, notify: socket.socket) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT
        notify.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                message = notify.recv(4096).decode(errors="replace")
            except TimeoutError:
                message = ""
            if "READY=1" in message.splitlines():
                return
            if self.proc.poll() is not None:
                raise PrivateDaemonError(f"slipsd exited ({self.proc.returncode}):\n"
                                         + self.log_tail())
        self.stop()
        raise PrivateDaemonError(f"slipsd was not ready after {READY_TIMEOUT:g}s:\n"
                                 + self.log_tail())

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.runtime, ignore_errors=True)
