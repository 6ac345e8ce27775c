"""slipsd end to end: real daemon, real embedded redis-server, real child processes and signals."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from slipsctl.cli import app
from slipsd import protocol

import zeekgen
from conftest import REPO, Daemon, module_dirs_conf, wait_for


def long_conn_log(path: Path, n: int = 2000, seed: int = 7) -> Path:
    """A conn.log where one flow in 100 lasts over an hour."""
    flows = zeekgen.make_conn_flows(n, seed=seed, span=2 * 3600)
    for i, flow in enumerate(flows):
        if i % 100 == 0:
            flow.update(duration=4000.0, conn_state="SF", orig_bytes=100, resp_bytes=100)
    path.mkdir(parents=True, exist_ok=True)
    zeekgen.write_conn_log(str(path / "conn.log"), flows)
    return path


def outputs(folder: Path) -> tuple[list[str], list[dict[str, Any]]]:
    lines = (folder / "alerts.log").read_text().splitlines()
    messages = [json.loads(line) for line in (folder / "alerts.json").read_text().splitlines()]
    return lines, messages


def test_analyze_demo_sample_produces_alerts(make_daemon: Any, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon()
    run = daemon.analyze(REPO / "samples" / "demo-zeek", tmp_path / "out")
    summary = run["summary"]
    assert run["state"] == "finished"
    assert summary["bad_lines"] == 0
    assert summary["evidence_by_type"].get("LONG_CONNECTION", 0) >= 6
    assert summary["alerts"] >= 1
    lines, messages = outputs(tmp_path / "out")
    assert any(" ALERT 192.168.56.101 " in line for line in lines)  # long connections
    assert any(" ALERT 192.168.56.103 " in line for line in lines)  # a telnet sweep
    assert summary["evidence_by_type"]["HORIZONTAL_PORT_SCAN"] == 2  # at 10 and 100 hosts
    assert len(messages) == summary["evidence"] + summary["alerts"]
    for message in messages:
        assert message["Version"] == "2.0.3"
        assert {"ID", "CreateTime", "Analyzer", "Category", "Source"} <= message.keys()
    profile_files = list((tmp_path / "out" / "profiles").glob("*/tw*.txt"))
    assert len(profile_files) >= summary["profiles"]


def test_every_flow_of_100k_is_counted_once(make_daemon: Any, tmp_path: Path) -> None:
    flows = zeekgen.make_conn_flows(100_000, seed=3, span=3 * 3600)
    (tmp_path / "big").mkdir()
    zeekgen.write_conn_log(str(tmp_path / "big" / "conn.log"), flows)
    daemon: Daemon = make_daemon()
    run = daemon.analyze(tmp_path / "big" / "conn.log", tmp_path / "out")
    assert run["summary"]["flows"] == 100_000
    assert run["summary"]["lines"] == 100_000
    from slipsd.store import Store

    store = Store(daemon.redis(), run["id"])
    by_profile = {ip: int(store.profile(ip)["flows"]) for ip in store.profiles()}
    assert sum(by_profile.values()) == 100_000
    expected: dict[str, int] = {}
    for flow in flows:
        expected[flow["id.orig_h"]] = expected.get(flow["id.orig_h"], 0) + 1
    assert by_profile == expected
    windows = store.all_windows()
    assert sum(w["flows"] for w in windows.values()) == 100_000
    assert {tw for _, tw in windows} == {0, 1, 2}


def test_malformed_lines_are_reported_and_the_rest_is_read(
    make_daemon: Any, tmp_path: Path
) -> None:
    folder = long_conn_log(tmp_path / "logs", n=500)
    lines = (folder / "conn.log").read_text().splitlines(keepends=True)
    lines.insert(10, "{not json\n")
    lines.insert(200, '["a list"]\n')
    (folder / "conn.log").write_text("".join(lines))
    daemon: Daemon = make_daemon()
    run = daemon.analyze(folder, tmp_path / "out")
    summary = run["summary"]
    assert summary["bad_lines"] == 2
    assert summary["flows"] == 500
    assert any("conn.log:11:" in e for e in summary["input_errors"])
    assert any("conn.log:201:" in e for e in summary["input_errors"])
    assert "Traceback" not in daemon.log_text()


def _evidence_and_alerts(daemon: Daemon, run: dict[str, Any]) -> tuple[Any, Any]:
    from slipsd.store import Store

    store = Store(daemon.redis(), run["id"])
    evidence = sorted((e["id"], e["type"], e["description"]) for e in store.all_evidence())
    alerts = sorted((a["id"], tuple(a["evidence"])) for a in store.alerts())
    return evidence, alerts


def module_host(daemon: Daemon, name: str) -> dict[str, Any] | None:
    """The running host process of module ``name`` (alone or sharing it)."""
    return next((c for c in daemon.children("module")
                 if name in c.get("modules", ()) and c["pid"]), None)


@contextlib.contextmanager
def paused_input(daemon: Daemon, module: str) -> Iterator[tuple[dict[str, Any], Any, str]]:
    """Hold a running analysis in the middle: ``module`` has processed some flows and
    the ingest process is stopped (SIGSTOP) until the block ends.

    The module is frozen first, so backpressure stalls the input after a few
    batches; then the input is frozen and the module thawed to process what it has.
    The input is held from its start until the module is frozen: a small analysis can
    otherwise be over between the module's "ready" and its SIGSTOP.
    """
    ingest = wait_for(lambda: next((c for c in daemon.children("ingest") if c["pid"]), None),
                      30, "the ingest")
    os.kill(ingest["pid"], signal.SIGSTOP)
    try:
        host = wait_for(lambda: module_host(daemon, module), 30, f"the {module} host")
        redis = daemon.redis()
        key = f"slips:{{{host['group']}}}:"
        # Every module of the host, not only ``module``: the ingest waits for all of
        # them to be ready, and the host marks them one by one.
        wait_for(lambda: all(redis.sismember(key + "ready", m) for m in host["modules"]),
                 30, f"the modules of the {module} host to be ready")
        os.kill(host["pid"], signal.SIGSTOP)
    finally:
        os.kill(ingest["pid"], signal.SIGCONT)

    def lag() -> int:
        groups = redis.execute_command("XINFO", "GROUPS", key + "stream:new_flow")
        info = [dict(zip(g[::2], g[1::2], strict=True)) for g in groups]
        group = "module:" + host["name"].rsplit("/", 1)[1]
        return max(int(g["lag"] or 0) for g in info if g["name"] == group)

    wait_for(lambda: lag() > 2, 30, "the input to stall on backpressure")
    # slipsctl status shows how far the frozen module is behind (never shed).
    shown = module_host(daemon, module)
    assert shown is not None and shown["lag"] > 2
    os.kill(ingest["pid"], signal.SIGSTOP)
    os.kill(host["pid"], signal.SIGCONT)
    try:
        wait_for(lambda: int(redis.hget(key + f"module:{module}", "processed") or 0) > 0,
                 30, f"{module} to process flows")
        yield host, redis, key
    finally:
        with contextlib.suppress(ProcessLookupError):  # the test may have killed it
            os.kill(ingest["pid"], signal.SIGCONT)


@pytest.mark.parametrize(("enabled", "victim", "evidence_type", "in_host"), [
    # a module from another folder: a host of its own
    ("long_connection, flow_counter", "flow_counter", "MANY_FLOWS", ["flow_counter"]),
    # shipped modules sharing one host: all three are killed and replay together
    ("long_connection, flows, scans", "long_connection", "LONG_CONNECTION",
     ["long_connection", "flows", "scans"]),
])
def test_module_killed_mid_run_gives_the_same_results(
    make_daemon: Any, tmp_path: Path, enabled: str, victim: str, evidence_type: str,
    in_host: list[str],
) -> None:
    folder = long_conn_log(tmp_path / "logs", n=30_000, seed=11)
    conf = module_dirs_conf(enabled, "processes = 1\n[bus]\nmax_lag = 4\n")
    daemon: Daemon = make_daemon(conf)
    calm = daemon.analyze(folder, tmp_path / "calm")
    calm_results = _evidence_and_alerts(daemon, calm)
    assert calm["summary"]["evidence_by_type"][evidence_type] > 0

    result: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: result.update(daemon.analyze(folder, tmp_path / "killed")))
    worker.start()
    with paused_input(daemon, victim) as (host, _, _):
        assert list(host["modules"]) == in_host
        os.kill(host["pid"], signal.SIGKILL)
        wait_for(lambda: (c := module_host(daemon, victim)) and c["restarts"] == 1
                 and c["pid"] != host["pid"], 30, "the module restart")
    worker.join(120)
    assert result, "the disturbed analysis did not finish"
    assert _evidence_and_alerts(daemon, result) == calm_results
    assert "replaying run" in daemon.log_text()


def test_module_raising_on_every_message_stays_up(make_daemon: Any, tmp_path: Path) -> None:
    folder = long_conn_log(tmp_path / "logs", n=300)
    daemon: Daemon = make_daemon(module_dirs_conf("long_connection, raiser"))
    run = daemon.analyze(folder, tmp_path / "out")
    assert run["state"] == "finished"
    assert run["summary"]["evidence_by_type"]["LONG_CONNECTION"] == 3
    from slipsd.store import Store

    stats = Store(daemon.redis(), run["id"]).module_stats("raiser")
    assert stats["errors"] == 300
    assert stats["processed"] == 300
    assert "RuntimeError: boom" in stats["last_error"]
    log = daemon.log_text()
    assert log.count("boom on") >= 20 and "Traceback" in log  # trimmed, first ones only


def test_status_lists_a_running_module_with_its_errors(make_daemon: Any, tmp_path: Path) -> None:
    folder = long_conn_log(tmp_path / "logs", n=5000)
    daemon: Daemon = make_daemon(module_dirs_conf("raiser", "[bus]\nmax_lag = 2\n"))
    worker = threading.Thread(target=lambda: daemon.analyze(folder, tmp_path / "out"))
    worker.start()
    with paused_input(daemon, "raiser"):
        raiser = wait_for(lambda: [c for c in daemon.children("module") if c["errors"] > 0],
                          30, "raiser errors in status")[0]
        assert raiser["state"] in ("starting", "running")
        assert raiser["pid"] > 0
        assert "boom" in raiser["last_error"]
        out = CliRunner().invoke(app, ["status", "--socket", str(daemon.socket)])
        assert out.exit_code == 0, out.output
        assert "raiser" in out.output and "errors" in out.output
    worker.join(120)


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


def test_run_without_modules_still_profiles_everything(make_daemon: Any, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon("[modules]\nenabled =\n")
    run = daemon.analyze(long_conn_log(tmp_path / "logs", n=700), tmp_path / "out")
    summary = run["summary"]
    assert summary["flows"] == 700 and summary["lines"] == 700
    assert summary["evidence"] == 0
    assert len(list((tmp_path / "out" / "profiles").glob("*/tw*.txt"))) >= summary["profiles"] > 0


def test_ingest_killed_fails_the_run_cleanly(make_daemon: Any, tmp_path: Path) -> None:
    folder = long_conn_log(tmp_path / "logs", n=20_000)
    daemon: Daemon = make_daemon(module_dirs_conf("flow_counter", "[bus]\nmax_lag = 2\n"))
    errors: list[Exception] = []

    def analyze() -> None:
        try:
            daemon.analyze(folder, tmp_path / "out")
        except protocol.ProtocolError as exc:
            errors.append(exc)

    worker = threading.Thread(target=analyze)
    worker.start()
    with paused_input(daemon, "flow_counter"):
        ingest = daemon.children("ingest")[0]
        os.kill(ingest["pid"], signal.SIGKILL)
    worker.join(120)
    assert len(errors) == 1 and errors[0].code == "failed"
    assert "input process ended early: killed by SIGKILL" in errors[0].message
    assert daemon.call("hello")["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    assert [c for c in daemon.children() if c["group"]] == []


def test_entry_point_module_runs_in_the_daemon(make_daemon: Any, tmp_path: Path) -> None:
    from test_modules import make_plugin_site

    site = make_plugin_site(tmp_path)
    daemon: Daemon = make_daemon("[modules]\nenabled = extmod\n",
                                 env={"PYTHONPATH": f"{site}:{REPO}"})
    run = daemon.analyze(long_conn_log(tmp_path / "logs", n=50), tmp_path / "out")
    assert run["summary"]["evidence_by_type"] == {"EXT_SEEN": 50}


def test_old_runs_are_removed_from_redis(make_daemon: Any, tmp_path: Path) -> None:
    folder = long_conn_log(tmp_path / "logs", n=300)
    daemon: Daemon = make_daemon("[database]\nkeep_runs = 1\n")
    first = daemon.analyze(folder, tmp_path / "one")
    redis = daemon.redis()
    assert redis.keys(f"slips:{{{first['id']}}}:*")
    second = daemon.analyze(folder, tmp_path / "two")
    assert redis.keys(f"slips:{{{first['id']}}}:*") == []
    assert redis.keys(f"slips:{{{second['id']}}}:*")
    assert [r["id"] for r in daemon.call("status")["runs"]] == [second["id"]]
    assert (tmp_path / "one" / "alerts.log").is_file()  # outputs are the user's


def test_analysis_finishes_when_the_client_goes_away(make_daemon: Any, tmp_path: Path) -> None:
    import socket as sk

    folder = long_conn_log(tmp_path / "logs", n=20_000)
    daemon: Daemon = make_daemon()
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    with sk.socket(sk.AF_UNIX, sk.SOCK_STREAM) as client:
        client.connect(str(daemon.socket))
        request = protocol.encode(protocol.request(1, "analyze", {"name": str(folder)}))
        sk.send_fds(client, [request], [fd])
        os.close(fd)
        wait_for(lambda: daemon.call("status")["runs"], 30, "the run to start")
    runs = wait_for(lambda: [r for r in daemon.call("status")["runs"]
                             if r["state"] != "running"], 120, "the run to finish")
    assert runs[0]["state"] == "finished"
    assert runs[0]["summary"]["flows"] == 20_000
    assert [c for c in daemon.children() if c["group"]] == []


def test_demo_capture_tells_its_stories(make_daemon: Any, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon()
    run = daemon.analyze(REPO / "samples" / "demo.pcap", tmp_path / "out")
    from slipsd.store import Store

    store = Store(daemon.redis(), run["id"])
    found = {(e["type"], e["attacker"]) for e in store.all_evidence()}
    assert ("HORIZONTAL_PORT_SCAN", "192.168.56.103") in found  # the telnet sweep
    assert ("ARP_SCAN", "192.168.56.104") in found
    assert ("LONG_CONNECTION", "192.168.56.101") in found  # the 28-minute session
    # The 60 s beacons to a name the shipped demo feed lists (etc/feeds/demo.csv).
    assert ("COMMAND_AND_CONTROL_BEACON", "192.168.56.102") in found
    assert ("BLACKLISTED_DOMAIN", "192.168.56.102") in found
    assert [a["profile"] for a in store.alerts()] == ["192.168.56.103", "192.168.56.102"]
    assert run["summary"]["bad_lines"] == 0


def test_a_module_that_goes_fatal_does_not_hang_the_run(make_daemon: Any, tmp_path: Path) -> None:
    folder = long_conn_log(tmp_path / "logs", n=20_000)
    conf = module_dirs_conf("long_connection, crasher",
                            "[bus]\nmax_lag = 2\n[supervision]\nbackoff_initial = 0.05\n"
                            "backoff_max = 0.1\nfatal_after = 3\n")
    daemon: Daemon = make_daemon(conf)
    run = daemon.analyze(folder, tmp_path / "out")  # returns: backpressure let go of it
    assert run["summary"]["flows"] == 20_000
    assert run["summary"]["evidence_by_type"]["LONG_CONNECTION"] == 200
    assert run["summary"]["modules_failed"]["crasher"] == "exit status 3"
    assert "module crasher failed" in run["problem"]


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


def test_sigterm_during_an_analysis_leaves_no_process(make_daemon: Any, tmp_path: Path) -> None:
    folder = long_conn_log(tmp_path / "logs", n=50_000)
    daemon: Daemon = make_daemon("[bus]\nmax_lag = 2\n[supervision]\nstop_timeout = 3\n")
    def analyze() -> None:
        with contextlib.suppress(protocol.ProtocolError, ConnectionError):
            daemon.analyze(folder, tmp_path / "out")  # cut short by the stop

    worker = threading.Thread(target=analyze, daemon=True)
    worker.start()
    # Held in the middle of the run, its ingest frozen by SIGSTOP: it cannot even obey
    # SIGTERM, so the stop must escalate to SIGKILL within the deadline.
    with paused_input(daemon, "long_connection"):
        pids = [c["pid"] for c in daemon.children() if c["pid"]]
        # redis, ingest, the evidence handler and the module hosts: shared, one per CPU
        assert len(pids) >= 3 + min(len(os.sched_getaffinity(0)), 13)
        assert daemon.stop(timeout=30) == 0

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(lambda: all(gone(pid) for pid in pids), 10, "every child to be gone")
