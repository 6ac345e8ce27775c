"""slipsd end to end, faults in a run: module and ingest processes killed, raising or
failing mid-run (held there by backpressure and SIGSTOP), and a stop during an analysis."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from slipsctl.cli import app
from slipsd import protocol

from conftest import Daemon, long_conn_log, module_dirs_conf, wait_for


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
