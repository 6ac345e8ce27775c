"""slipsd end to end, its life: starting (and refusing to), its Redis, two side by side,
serving clients through bad requests, and stopping every child."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slipsd import protocol

from conftest import Daemon, long_conn_log


def test_two_daemons_side_by_side(make_daemon: Any, tmp_path: Path) -> None:
    folder = long_conn_log(tmp_path / "logs", n=400)
    one: Daemon = make_daemon(name="one")
    two: Daemon = make_daemon(name="two")
    assert one.socket != two.socket
    assert one.call("hello")["pid"] != two.call("hello")["pid"]
    run_one = one.analyze(folder)
    assert Path(run_one["output"]).is_relative_to(one.output)
    assert two.call("status")["runs"] == []  # the other daemon saw nothing
    assert one.redis().keys("slips:{*") and not two.redis().keys("slips:{*")
    run_two = two.analyze(folder)
    assert Path(run_two["output"]).is_relative_to(two.output)
    assert run_one["summary"]["evidence"] == run_two["summary"]["evidence"]


def test_second_daemon_on_the_same_runtime_dir_is_refused(
    make_daemon: Any, tmp_path: Path
) -> None:
    first: Daemon = make_daemon(name="first")
    clash: Daemon = make_daemon(name="clash", start=False)
    clash.config.parent.joinpath("slips.d", "60-same.conf").write_text(
        f"[daemon]\nruntime_dir = {first.runtime}\n")
    proc = subprocess.run([sys.executable, "-m", "slipsd", "--config", str(clash.config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "already serving" in proc.stderr
    assert first.call("hello")["pid"] == first.proc.pid  # type: ignore[union-attr]


def test_missing_redis_server_is_a_clear_error(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon("[database]\nredis_server = /nonexistent/redis-server\n",
                                 start=False)
    proc = subprocess.run([sys.executable, "-m", "slipsd", "--config", str(daemon.config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "redis-server not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_external_redis_is_a_clear_error(make_daemon: Any, tmp_path: Path) -> None:
    conf = (f"[database]\nurl = unix://{tmp_path / 'nobody.sock'}\nstart_timeout = 0.5\n")
    daemon: Daemon = make_daemon(conf, start=False)
    proc = subprocess.run([sys.executable, "-m", "slipsd", "--config", str(daemon.config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "cannot reach Redis" in proc.stderr and "nobody.sock" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_external_redis_url_is_used(make_daemon: Any, redis_url: str, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon(f"[database]\nurl = {redis_url}\n")
    assert not (daemon.runtime / "redis.sock").exists()
    assert daemon.children("redis") == []
    run = daemon.analyze(long_conn_log(tmp_path / "logs", n=200))
    assert run["summary"]["flows"] == 200


def test_sigterm_stops_every_child(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon()
    redis_pid = daemon.children("redis")[0]["pid"]
    assert daemon.stop() == 0
    with pytest.raises(ProcessLookupError):
        os.kill(redis_pid, 0)
    assert not daemon.socket.exists()
    assert any("STOPPING=1" in n.splitlines() for n in daemon.notifications)


def test_bad_requests_do_not_disturb_other_clients(make_daemon: Any) -> None:
    daemon: Daemon = make_daemon()
    import socket as sk

    def raw(payload: bytes) -> dict[str, Any]:
        with sk.socket(sk.AF_UNIX, sk.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(str(daemon.socket))
            s.sendall(payload)
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return json.loads(data.splitlines()[0])  # type: ignore[no-any-return]

    assert raw(b"garbage\n")["error"]["code"] == "bad_request"
    assert raw(b'{"v": 9, "id": 1, "cmd": "hello"}\n')["error"]["code"] == "unsupported_version"
    assert raw(b'{"v": 1, "id": 2, "cmd": "fly"}\n')["error"]["code"] == "unknown_command"
    assert raw(b'{"v": 1, "id": 3, "cmd": "status", "args": []}\n')["error"]["code"] == (
        "bad_request")
    huge = b'{"v": 1, "id": 4, "cmd": "hello", "pad": "' + b"x" * (protocol.MAX_LINE + 10)
    assert raw(huge)["error"]["code"] == "line_too_long"
    # A half-written request stays pending while another client is served.
    with daemon.client() as other, sk.socket(sk.AF_UNIX, sk.SOCK_STREAM) as half:
        half.connect(str(daemon.socket))
        half.sendall(b'{"v": 1, "id": 5, "cmd": "hel')
        assert other.call("hello")["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    assert daemon.call("hello")["protocol"] == protocol.VERSION


def test_unusable_runtime_dir_is_a_clear_error(make_daemon: Any, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    daemon: Daemon = make_daemon(start=False)
    daemon.config.parent.joinpath("slips.d", "60-run.conf").write_text(
        f"[daemon]\nruntime_dir = {blocker}/run\n")
    proc = subprocess.run([sys.executable, "-m", "slipsd", "--config", str(daemon.config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "not-a-dir" in proc.stderr and "Traceback" not in proc.stderr
