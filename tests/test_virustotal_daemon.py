"""The virustotal module in a real slipsd: ip info in Redis, the cache across runs, stop."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from slipsctl.cli import app
from slipsd.store import IpInfo

from conftest import Daemon, module_dirs_conf, wait_for
from vt_server import KEY, VTServer, reputation, scores


@pytest.fixture
def vt() -> Any:
    with VTServer() as server:
        yield server


def key_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vt.key"
    path.write_text(KEY + "\n")
    return path


def write_logs(folder: Path) -> Path:
    folder.mkdir(parents=True)
    conn = [{"ts": 1_700_000_000.0 + i, "uid": f"CVt{i:015d}", "id.orig_h": "192.168.1.10",
             "id.orig_p": 50000 + i, "id.resp_h": dst, "id.resp_p": 443, "proto": "tcp",
             "service": "ssl", "duration": 1.0, "orig_bytes": 100, "resp_bytes": 900,
             "conn_state": "SF", "history": "ShADadFf", "orig_pkts": 5, "resp_pkts": 5}
            for i, dst in enumerate(["203.0.113.5", "198.51.100.20", "192.168.1.1"])]
    dns = [{"ts": 1_699_999_999.0, "uid": "CVtDns000000001", "id.orig_h": "192.168.1.10",
            "id.orig_p": 40000, "id.resp_h": "192.168.1.1", "id.resp_p": 53, "proto": "udp",
            "query": "evil.example.com", "qtype_name": "A", "rcode_name": "NOERROR",
            "answers": ["203.0.113.5"], "TTLs": [300.0]}]
    for name, records in (("conn", conn), ("dns", dns)):
        (folder / f"{name}.log").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def test_daemon_keeps_vt_scores_on_ip_info_and_caches_them(make_daemon: Any, tmp_path: Path,
                                                           vt: VTServer) -> None:
    key = key_file(tmp_path / "key")
    daemon: Daemon = make_daemon(module_dirs_conf(
        "virustotal", f"[virustotal]\napi_key_file = {key}\nurl = {vt.url}\n"
                      "requests_per_minute = 6000\n"))
    logs = write_logs(tmp_path / "logs")
    run = daemon.analyze(logs, tmp_path / "out1")
    assert run["state"] == "finished" and not run["problem"], run
    assert sorted(vt.paths()) == ["/domains/evil.example.com", "/ip_addresses/198.51.100.20",
                                  "/ip_addresses/203.0.113.5"]
    info = IpInfo(daemon.redis(), run["id"]).get("203.0.113.5")
    assert info["vt"]["malicious"] == scores("203.0.113.5")["malicious"]
    assert info["vt"]["reputation"] == reputation("203.0.113.5")
    assert info["vt_domains"]["evil.example.com"]["harmless"] == \
        scores("evil.example.com")["harmless"]
    assert IpInfo(daemon.redis(), run["id"]).get("192.168.1.1") == {}
    shown = CliRunner().invoke(app, ["profile", "203.0.113.5", "--run", run["id"], "--json",
                                     "--socket", str(daemon.socket)])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["ip_info"]["vt"] == info["vt"]
    pacing = tmp_path / "d" / "state" / "modules" / "virustotal" / "pacing.json"
    assert json.loads(pacing.read_text())["used"] == 3
    # The second analysis answers from the Redis cache: VirusTotal sees nothing new.
    again = daemon.analyze(logs, tmp_path / "out2")
    assert again["state"] == "finished"
    assert len(vt.requests) == 3
    assert IpInfo(daemon.redis(), again["id"]).get("203.0.113.5")["vt"] == info["vt"]
    assert "Traceback" not in daemon.log_text()


def test_daemon_does_not_start_it_without_a_key(make_daemon: Any, tmp_path: Path) -> None:
    missing = tmp_path / "missing.key"
    daemon: Daemon = make_daemon(module_dirs_conf(
        "virustotal", f"[virustotal]\napi_key_file = {missing}\n"))
    run = daemon.analyze(write_logs(tmp_path / "logs"), tmp_path / "out")
    assert run["state"] == "finished"
    why = f"api_key_file {missing}: no such file"
    assert run["unavailable_modules"] == {"virustotal": why}
    assert daemon.call("status")["daemon"]["unavailable_modules"] == {"virustotal": why}
    listed = {m["name"]: m for m in daemon.call("modules")["modules"]}
    assert listed["virustotal"]["enabled"] and listed["virustotal"]["unavailable"] == why
    missing.write_text(KEY + "\n")
    assert daemon.call("status")["daemon"]["unavailable_modules"] == {}


def test_daemon_stop_does_not_wait_for_pending_lookups(make_daemon: Any, tmp_path: Path,
                                                       vt: VTServer) -> None:
    key = key_file(tmp_path / "key")
    daemon: Daemon = make_daemon(module_dirs_conf(
        "virustotal", f"[virustotal]\napi_key_file = {key}\nurl = {vt.url}\n"
                      "requests_per_minute = 1\n"))
    logs = write_logs(tmp_path / "logs")
    replies: list[Any] = []

    def analyze() -> None:
        try:
            replies.append(daemon.analyze(logs, tmp_path / "out"))
        except Exception as exc:  # the daemon goes away mid-call
            replies.append(exc)

    caller = threading.Thread(target=analyze)
    caller.start()
    wait_for(lambda: "VirusTotal lookups (about" in daemon.log_text(), 30,
             "the module to wait for its lookups at the end of the analysis")
    wait_for(lambda: len(vt.requests) == 1, 10, "the first request")
    assert not replies  # one request a minute: the analysis is held by the other two
    # Far less than the two minutes the lookups left would take at one a minute; not
    # tighter, since a stop mid-analysis also finishes the cancelled run's bookkeeping.
    assert daemon.stop(timeout=30) == 0
    caller.join(10)
    log = daemon.log_text()
    assert "stopped with 2 VirusTotal lookups not done" in log
    assert "did not stop after SIGTERM" not in log and "Traceback" not in log
