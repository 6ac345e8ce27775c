"""slipsd end to end, analyses: real daemon, real embedded redis-server, what a run counts,
reports and writes, and what is kept of it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from slipsd import protocol

import zeekgen
from conftest import REPO, Daemon, long_conn_log, wait_for


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
    windows = store.all_windows(top=10)
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


def test_run_without_modules_still_profiles_everything(make_daemon: Any, tmp_path: Path) -> None:
    daemon: Daemon = make_daemon("[modules]\nenabled =\n")
    run = daemon.analyze(long_conn_log(tmp_path / "logs", n=700), tmp_path / "out")
    summary = run["summary"]
    assert summary["flows"] == 700 and summary["lines"] == 700
    assert summary["evidence"] == 0
    assert len(list((tmp_path / "out" / "profiles").glob("*/tw*.txt"))) >= summary["profiles"] > 0


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
