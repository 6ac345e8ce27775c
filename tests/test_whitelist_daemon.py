"""The whitelist in slipsd: its configured file, and a real daemon applying it before evidence
(the file's lines and what they drop are in test_whitelist.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slipsd import protocol
from slipsd.config import ConfigError, load, whitelist_file
from slipsd.store import Store

import zeekgen
from conftest import REPO, module_dirs_conf

T0 = 1_700_000_000.0


# -- configuration ------------------------------------------------------------------------


def test_configured_file_must_exist_default_need_not(tmp_path: Path) -> None:
    main = tmp_path / "slips.conf"
    main.write_text("")
    assert whitelist_file(load(main)) == ""  # no whitelist.conf beside it: none
    (tmp_path / "whitelist.conf").write_text("ip, 10.0.0.1\n")
    assert whitelist_file(load(main)) == str(tmp_path / "whitelist.conf")
    local = tmp_path / "slips.local"
    local.write_text("[whitelist]\nfile = lists/mine.conf\n")
    with pytest.raises(ConfigError) as err:
        load(main)
    assert err.value.problems == [
        f"{local}: [whitelist] file: {tmp_path / 'lists' / 'mine.conf'}: no such file"]
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "mine.conf").write_text("")
    assert whitelist_file(load(main)) == str(tmp_path / "lists" / "mine.conf")


def test_daemon_refuses_to_start_on_a_missing_configured_file(tmp_path: Path) -> None:
    main = tmp_path / "slips.conf"
    shipped = (REPO / "etc" / "slips.conf").read_text()
    assert shipped.count("\nfile =\n") == 1
    main.write_text(shipped.replace("\nfile =\n", "\nfile = /nonexistent/x.conf\n"))
    result = subprocess.run([sys.executable, "-m", "slipsd", "--config", str(main)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 78
    assert f"{main}: [whitelist] file: /nonexistent/x.conf: no such file" in result.stderr
    assert "Traceback" not in result.stderr


# -- through a real daemon ----------------------------------------------------------------


def write_traffic(folder: Path) -> None:
    """Scanners, a client resolving and visiting domains, a device known by its MAC."""
    folder.mkdir()
    flows: list[dict[str, Any]] = []
    n = 0

    def flow(t: float, src: str, dst: str, port: int, state: str = "SF", **extra: Any) -> None:
        nonlocal n
        n += 1
        proto = "udp" if port == 53 else "tcp"
        flows.append(zeekgen.conn_record(T0 + t, f"C{n:017d}", src, 40000 + n, dst, port,
                                         proto=proto, conn_state=state, duration=0.5,
                                         orig_bytes=0 if state == "S0" else 100,
                                         resp_bytes=0 if state == "S0" else 900, **extra))

    # Four vertical scans of 20 ports: A whitelisted as source, B for evidence only,
    # C not at all (the control), D's victim whitelisted for evidence.
    for i, (src, dst) in enumerate([("192.168.1.66", "198.51.100.7"),
                                    ("192.168.1.77", "198.51.100.8"),
                                    ("192.168.1.88", "198.51.100.9"),
                                    ("192.168.1.55", "198.51.100.10")]):
        for port in range(1000, 1020):
            flow(10 + i * 30 + (port - 1000) * 0.5, src, dst, port, "S0")
    client = "192.168.1.10"
    flow(201, client, "203.0.113.50", 443)        # resolved from www.example.com: dropped
    flow(201.9, client, "203.0.113.51", 8080)     # HTTP to a host of example.com: kept
    flow(202, client, "8.8.8.8", 53)              # google's network: dropped
    flow(203, client, "2a00:1450:4001::200e", 443)  # google's IPv6 network: dropped
    flow(204, client, "17.1.2.3", 443)            # apple: kept
    flow(206, client, "203.0.113.60", 443)        # resolved from notexample.com: kept
    for i in range(3):                            # the device whitelisted by MAC: dropped
        flow(210 + i, "192.168.1.99", "198.51.100.20", 443, orig_l2_addr="00:11:22:33:44:55")
    zeekgen.write_log(str(folder / "conn.log"), "conn", sorted(flows, key=lambda r: r["ts"]))

    def dns(t: float, query: str, answer: str) -> dict[str, Any]:
        return {"ts": T0 + t, "uid": f"D{int(t)}", "id.orig_h": client, "id.orig_p": 5353,
                "id.resp_h": "192.168.1.1", "id.resp_p": 53, "proto": "udp", "query": query,
                "qtype_name": "A", "rcode_name": "NOERROR", "answers": [answer], "TTLs": [60.0]}

    zeekgen.write_log(str(folder / "dns.log"), "dns", [
        dns(200, "www.example.com", "203.0.113.50"),
        dns(200.5, "www.google.com", "142.250.1.1"),
        dns(205, "notexample.com", "203.0.113.60"),
    ])
    zeekgen.write_log(str(folder / "http.log"), "http", [{
        "ts": T0 + 202, "uid": "H1", "id.orig_h": client, "id.orig_p": 40100,
        "id.resp_h": "203.0.113.51", "id.resp_p": 8080, "method": "GET",
        "host": "static.example.com:8080", "uri": "/", "status_code": 200}])
    zeekgen.write_log(str(folder / "ssl.log"), "ssl", [{
        "ts": T0 + 201.5, "uid": "S1", "id.orig_h": client, "id.orig_p": 40101,
        "id.resp_h": "203.0.113.50", "id.resp_p": 443, "server_name": "www.example.com",
        "version": "TLSv13", "established": True}])


WHITELIST = """\
# the test's whitelist
ip, 192.168.1.66, src, both
ip, 192.168.1.77, src, evidence
network, 198.51.100.10/32, dst, evidence
domain, example.com, dst, flows
organization, google, dst, flows
mac, 00:11:22:33:44:55, src, flows
ip, 999.1.1.1
organization, initech, dst
"""


def test_daemon_applies_the_whitelist_before_evidence(make_daemon: Any, tmp_path: Path) -> None:
    data = tmp_path / "logs"
    write_traffic(data)
    daemon = make_daemon(module_dirs_conf("scans, flow_counter"), start=False)
    listed = daemon.config.parent / "whitelist.conf"  # the default place: beside slips.conf
    listed.write_text(WHITELIST)
    daemon.start()
    run = daemon.analyze(data, tmp_path / "out")
    assert run["state"] == "finished", run["problem"]
    summary = run["summary"]
    store = Store(daemon.redis(), run["id"])
    evidence = store.all_evidence()
    by_attacker: dict[str, list[dict[str, Any]]] = {}
    for item in evidence:
        by_attacker.setdefault(item["attacker"], []).append(item)

    # A: flows dropped before profiling, so no profile and no evidence at all.
    assert "192.168.1.66" not in store.profiles()
    assert "192.168.1.66" not in by_attacker
    # B: evidence-only: its flows went through (profile, flows), its evidence did not.
    assert int(store.profile("192.168.1.77")["flows"]) == 20
    assert "192.168.1.77" not in by_attacker
    # C: the control, not whitelisted: the same scan is reported.
    assert "VERTICAL_PORT_SCAN" in {e["type"] for e in by_attacker["192.168.1.88"]}
    # D: the scan of a whitelisted victim is dropped; D's own other evidence stays.
    assert {e["type"] for e in by_attacker["192.168.1.55"]} == {"MANY_FLOWS", "WINDOW_TOTAL"}
    # The client: 3 of its 6 flows were whitelisted (a resolved address, google v4 and v6).
    totals = [e for e in by_attacker["192.168.1.10"] if e["type"] == "WINDOW_TOTAL"]
    assert [e["description"] for e in totals] == ["3 flows"]
    assert set(store.window("192.168.1.10", 0)["dst_ips"]) == {
        "203.0.113.51", "17.1.2.3", "203.0.113.60"}
    # The MAC-whitelisted device is gone too.
    assert "192.168.1.99" not in store.profiles()

    # Counted: flows 20 (A) + 3 (client) + 3 (MAC); events add 2 DNS, 1 HTTP, 1 TLS.
    assert summary["whitelisted_flows"] == 26
    assert summary["whitelisted_events"] == 30
    assert summary["flows"] == 89 - 26
    stats = store.stats()
    assert stats["whitelisted.new_dns"] == 2 and stats["events.new_dns"] == 1
    assert stats["whitelisted.new_http"] == 1 and "events.new_http" not in stats
    assert stats["whitelisted.new_ssl"] == 1 and "events.new_ssl" not in stats
    # Evidence: B's scan, MANY_FLOWS and WINDOW_TOTAL, and D's scan.
    assert summary["whitelisted_evidence"] == 4
    assert summary["evidence"] == len(evidence)
    # The bad lines, named by file and line; the rest of the file applied.
    info = summary["whitelist"]
    assert info["file"] == str(listed)
    assert (info["entries"], info["bad_lines"]) == (6, 2)
    assert info["errors"][0].startswith(f"{listed}:8: not an IP address")
    assert info["errors"][1].startswith(f"{listed}:9: unknown organization 'initech'")
    assert "whitelist" in daemon.log_text() and "Traceback" not in daemon.log_text()


def test_reload_checks_the_file_and_new_analyses_use_it(make_daemon: Any,
                                                        tmp_path: Path) -> None:
    data = tmp_path / "logs"
    write_traffic(data)
    daemon = make_daemon(module_dirs_conf("flow_counter"))
    listed = tmp_path / "lists" / "allow.conf"
    (daemon.config.parent / "slips.d" / "60-whitelist.conf").write_text(
        f"[whitelist]\nfile = {listed}\n")
    with pytest.raises(protocol.ProtocolError) as err:
        daemon.call("reload")
    assert err.value.code == "invalid_config"
    assert f"60-whitelist.conf: [whitelist] file: {listed}: no such file" in err.value.message
    first = daemon.analyze(data, tmp_path / "out1")  # the running configuration: no whitelist
    assert first["summary"]["whitelisted_events"] == 0 and first["summary"]["flows"] == 89
    listed.parent.mkdir()
    listed.write_text("network, 192.168.1.0/24, src, flows\n")
    assert "whitelist.file" in daemon.call("reload")["changed"]
    second = daemon.analyze(data, tmp_path / "out2")
    assert second["summary"]["flows"] == 0
    assert second["summary"]["whitelisted_flows"] == 89
    assert Store(daemon.redis(), second["id"]).all_evidence() == []
