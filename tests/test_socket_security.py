"""Who may talk to slipsd: the socket's group reads, the admin group changes, others
cannot connect. Needs root to run clients as other users (skipped otherwise); the
clients are plain Python with a raw socket, as another user would write them."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from conftest import Daemon

CLIENT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except PermissionError:
    sys.exit(13)
s.sendall(json.dumps({"v": 1, "id": 1, "cmd": sys.argv[2], "args": {}}).encode() + b"\\n")
print(s.makefile().readline().strip())
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as other users")


def as_user(user: str, group: str, socket: Path, cmd: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(["/usr/bin/python3", "-c", CLIENT, str(socket), cmd],
                          user=user, group=group, extra_groups=[], capture_output=True,
                          text=True, timeout=30, cwd="/")
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


@pytest.fixture
def open_root() -> Any:
    # Other users must be able to walk down to the runtime dir; pytest's own
    # temporary folders are private to root.
    folder = Path(tempfile.mkdtemp(prefix="slips-sock-"))
    folder.chmod(0o711)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=False)


def test_group_reads_admin_changes_others_cannot_connect(make_daemon: Any,
                                                         open_root: Path) -> None:
    daemon: Daemon = make_daemon(start=False)
    daemon.config.parent.joinpath("slips.d", "60-sock.conf").write_text(
        f"[daemon]\nruntime_dir = {open_root}/run\nsocket_group = nogroup\n")
    daemon.runtime = open_root / "run"
    daemon.socket = daemon.runtime / "slipsd.sock"
    daemon.start()
    assert oct(daemon.socket.stat().st_mode & 0o777) == "0o660"
    code, reply = as_user("nobody", "nogroup", daemon.socket, "status")
    assert code == 0 and reply["ok"] is True  # the group may read
    code, reply = as_user("nobody", "nogroup", daemon.socket, "stop")
    assert reply["ok"] is False and reply["error"]["code"] == "permission_denied"
    code, _ = as_user("daemon", "daemon", daemon.socket, "status")
    assert code == 13  # outside the group: the socket refuses the connection
    assert daemon.call("hello")["pid"] == daemon.proc.pid  # type: ignore[union-attr]


def test_admin_group_may_change(make_daemon: Any, open_root: Path) -> None:
    daemon: Daemon = make_daemon(start=False)
    daemon.config.parent.joinpath("slips.d", "60-sock.conf").write_text(
        f"[daemon]\nruntime_dir = {open_root}/run\nsocket_group = nogroup\n"
        "admin_group = nogroup\n")
    daemon.runtime = open_root / "run"
    daemon.socket = daemon.runtime / "slipsd.sock"
    daemon.start()
    code, reply = as_user("nobody", "nogroup", daemon.socket, "reload")
    assert code == 0 and reply["ok"] is True, reply
