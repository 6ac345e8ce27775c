"""The whitelist: its file, what it drops, and a real daemon applying it before evidence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from slipsd import protocol
from slipsd.config import ConfigError, load, whitelist_file
from slipsd.geoip import GeoIP
from slipsd.orgs import load_organizations
from slipsd.store import Store
from slipsd.whitelist import MAX_RESOLVED, fingerprint, parse_line, read_whitelist

import zeekgen
from conftest import module_dirs_conf

REPO = Path(__file__).resolve().parents[1]
T0 = 1_700_000_000.0


def whitelist(tmp_path: Path, text: str, **kwargs: Any) -> Any:
    path = tmp_path / "whitelist.conf"
    path.write_text(text)
    return read_whitelist(str(path), **kwargs)


def conn(saddr: str, daddr: str, dport: int = 443, **extra: Any) -> dict[str, Any]:
    return {"saddr": saddr, "daddr": daddr, "dport": dport, "state": "SF", **extra}


# -- the file -----------------------------------------------------------------------------


def test_line_format_defaults_and_normalisation() -> None:
    orgs = load_organizations()
    entry = parse_line("IP, 2001:DB8:0::1", orgs)
    assert entry is not None
    assert (entry.kind, entry.value, entry.src, entry.dst, entry.flows, entry.evidence) == \
        ("ip", "2001:db8::1", True, True, True, True)
    entry = parse_line("domain, *.Example.COM., dst, flows  # trailing comment", orgs)
    assert entry is not None and entry.value == "example.com"
    assert (entry.src, entry.dst, entry.flows, entry.evidence) == (False, True, True, False)
    entry = parse_line("mac, 00-11-22-AA-BB-CC, src, evidence", orgs)
    assert entry is not None and entry.value == "00:11:22:aa:bb:cc"
    entry = parse_line("org, Google", orgs)
    assert entry is not None and (entry.kind, entry.value) == ("organization", "google")
    assert parse_line("   # only a comment", orgs) is None
    assert parse_line("", orgs) is None


def test_bad_lines_are_named_counted_and_skipped(tmp_path: Path) -> None:
    wl = whitelist(tmp_path, "\n".join([
        "ip, 192.168.1.5",                   # 1 good
        "ip, 999.1.1.1",                     # 2 bad address
        "hostname, example.com",             # 3 unknown type
        "organization, initech",             # 4 unknown organisation
        "network, 10.0.0.0/8, sideways",     # 5 bad direction
        "domain, example.com, dst, alerts",  # 6 bad what
        "ip",                                # 7 too few fields
        "mac, 00:11:22:33:44",               # 8 short MAC
        "network, 10.0.0.0/8, src, flows",   # 9 good
    ]) + "\n")
    path = tmp_path / "whitelist.conf"
    assert wl.bad_lines == 7
    assert [int(e.split(":")[1]) for e in wl.errors] == [2, 3, 4, 5, 6, 7, 8]
    assert all(e.startswith(f"{path}:") for e in wl.errors)
    assert "not an IP address: '999.1.1.1'" in wl.errors[0]
    assert "unknown type 'hostname'" in wl.errors[1]
    assert "unknown organization 'initech' (known: akamai, amazon" in wl.errors[2]
    assert [e.line for e in wl.entries] == [1, 9]
    assert wl.drops_event("new_flow", conn("10.1.2.3", "198.51.100.1"))


def test_unreadable_file_is_an_empty_whitelist_with_one_error(tmp_path: Path) -> None:
    wl = read_whitelist(str(tmp_path / "gone.conf"))
    assert wl.empty and wl.bad_lines == 1
    assert wl.errors[0].startswith(f"{tmp_path / 'gone.conf'}: cannot read the whitelist")


def test_shipped_default_whitelists_nothing() -> None:
    wl = read_whitelist(str(REPO / "etc" / "whitelist.conf"))
    assert wl.entries == [] and wl.errors == []


# -- traffic ------------------------------------------------------------------------------


def test_ip_and_network_by_direction(tmp_path: Path) -> None:
    wl = whitelist(tmp_path, "ip, 192.168.1.5, src, flows\nnetwork, 203.0.113.0/24, dst\n"
                             "ip, 198.51.100.9, src, evidence\n")
    assert wl.drops_event("new_flow", conn("192.168.1.5", "198.51.100.1"))
    assert not wl.drops_event("new_flow", conn("198.51.100.1", "192.168.1.5"))  # dst side
    assert wl.drops_event("new_flow", conn("192.168.1.6", "203.0.113.77"))
    assert not wl.drops_event("new_flow", conn("203.0.113.77", "192.168.1.6"))
    # Evidence-only entries never drop traffic.
    assert not wl.drops_event("new_flow", conn("198.51.100.9", "192.168.1.6"))
    # Every log type, not only conn.
    assert wl.drops_event("new_ssh", {"saddr": "192.168.1.5", "daddr": "10.0.0.1"})
    assert wl.drops_event("new_notice", {"saddr": "", "daddr": "203.0.113.1"})


def test_domain_drops_its_records_and_the_addresses_it_resolved_to(tmp_path: Path) -> None:
    wl = whitelist(tmp_path, "domain, example.com, dst, flows\n")
    dns = {"saddr": "192.168.1.10", "daddr": "192.168.1.1", "query": "www.Example.com",
           "answers": ["cdn.example.net", "203.0.113.50", "2001:db8::50"]}
    # Before the answer is seen, the address is not known to be the domain's.
    assert not wl.drops_event("new_flow", conn("192.168.1.10", "203.0.113.50"))
    assert wl.drops_event("new_dns", dns)
    assert wl.drops_event("new_flow", conn("192.168.1.10", "203.0.113.50"))
    assert wl.drops_event("new_flow", conn("192.168.1.10", "2001:db8::50"))
    assert not wl.drops_event("new_flow", conn("203.0.113.50", "192.168.1.10"))  # dst only
    assert wl.drops_event("new_http", {"saddr": "a", "daddr": "b", "host": "img.example.com:8080"})
    assert wl.drops_event("new_ssl", {"saddr": "a", "daddr": "b", "server_name": "example.com"})
    for name in ("notexample.com", "example.com.evil.test", ""):
        assert not wl.drops_event("new_ssl", {"saddr": "a", "daddr": "b", "server_name": name})
        assert not wl.drops_event("new_dns", {"saddr": "a", "daddr": "b", "query": name,
                                              "answers": ["203.0.113.99"]})
    assert not wl.drops_event("new_flow", conn("192.168.1.10", "203.0.113.99"))


def test_resolved_addresses_are_bounded(tmp_path: Path) -> None:
    wl = whitelist(tmp_path, "domain, example.com, dst, flows\n")
    first = {"saddr": "a", "daddr": "b", "query": "x.example.com", "answers": ["10.0.0.1"]}
    wl.drops_event("new_dns", first)
    answers = [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(2, MAX_RESOLVED + 2)]
    wl.drops_event("new_dns", {**first, "answers": answers})
    assert not wl.drops_event("new_flow", conn("192.168.1.10", "10.0.0.1"))  # the oldest went
    assert wl.drops_event("new_flow", conn("192.168.1.10", answers[-1]))


def test_organization_networks_domains_and_mac(tmp_path: Path) -> None:
    wl = whitelist(tmp_path, "organization, google, dst, flows\n"
                             "mac, 00:11:22:33:44:55, src, flows\n")
    assert wl.drops_event("new_flow", conn("192.168.1.10", "8.8.8.8", 53))
    assert wl.drops_event("new_flow", conn("192.168.1.10", "2a00:1450:4001::200e"))
    assert wl.drops_event("new_dns", {"saddr": "a", "daddr": "b", "query": "www.youtube.com",
                                      "answers": ["198.51.100.200"]})
    assert wl.drops_event("new_flow", conn("192.168.1.10", "198.51.100.200"))
    assert not wl.drops_event("new_flow", conn("192.168.1.10", "17.1.2.3"))  # apple
    assert wl.drops_event("new_flow", conn("192.168.1.99", "17.1.2.3", smac="00:11:22:33:44:55"))
    assert wl.drops_event("new_arp", {"saddr": "192.168.1.99", "daddr": "192.168.1.1",
                                      "src_mac": "00:11:22:33:44:55"})
    assert not wl.drops_event("new_flow", conn("192.168.1.99", "17.1.2.3",
                                               dmac="00:11:22:33:44:55"))  # src only


def test_organization_asns_with_an_asn_database(tmp_path: Path) -> None:
    (tmp_path / "orgs").mkdir()
    (tmp_path / "orgs" / "transit.txt").write_text("asn: 64500\ndomain: transit.example\n")
    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    writer.insert_network(IPSet(["203.0.113.0/24"]), {
        "autonomous_system_number": 64500, "autonomous_system_organization": "Transit"})
    writer.to_db_file(str(tmp_path / "asn.mmdb"))
    orgs = load_organizations(str(tmp_path / "orgs"))
    geoip = GeoIP(asn_database=str(tmp_path / "asn.mmdb"))
    wl = whitelist(tmp_path, "organization, transit, dst, both\n", orgs=orgs, geoip=geoip)
    assert wl.info()["asn_matching"]
    assert wl.drops_event("new_flow", conn("192.168.1.10", "203.0.113.7"))
    assert not wl.drops_event("new_flow", conn("192.168.1.10", "198.51.100.7"))
    assert wl.drops_evidence({"attacker": "192.168.1.10", "victim": "203.0.113.7"})
    # Without the database the AS numbers are not matched; the domains still are.
    plain = whitelist(tmp_path, "organization, transit, dst, both\n", orgs=orgs)
    assert not plain.info()["asn_matching"]
    assert not plain.drops_event("new_flow", conn("192.168.1.10", "203.0.113.7"))
    assert plain.drops_evidence({"attacker": "192.168.1.10", "victim": "www.transit.example"})


# -- evidence -----------------------------------------------------------------------------


def test_evidence_attacker_is_src_and_victim_is_dst(tmp_path: Path) -> None:
    wl = whitelist(tmp_path, "ip, 192.168.1.66, src, evidence\n"
                             "network, 198.51.100.0/24, dst, both\n"
                             "domain, example.com, dst, evidence\n"
                             "ip, 192.168.1.5, src, flows\n")
    assert wl.drops_evidence({"attacker": "192.168.1.66", "victim": "10.0.0.1"})
    assert not wl.drops_evidence({"attacker": "10.0.0.1", "victim": "192.168.1.66"})
    assert wl.drops_evidence({"attacker": "10.0.0.1", "victim": "198.51.100.3"})
    assert not wl.drops_evidence({"attacker": "198.51.100.3", "victim": "10.0.0.1"})
    assert wl.drops_evidence({"attacker": "10.0.0.1", "victim": "mail.example.com"})
    assert not wl.drops_evidence({"attacker": "192.168.1.5", "victim": ""})  # flows only
    assert not wl.drops_event("new_flow", conn("192.168.1.66", "10.0.0.1"))  # evidence only


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


def test_fingerprint_changes_with_the_content(tmp_path: Path) -> None:
    path = tmp_path / "w.conf"
    assert fingerprint("") == fingerprint(str(path)) == ""
    path.write_text("ip, 10.0.0.1\n")
    before = fingerprint(str(path))
    path.write_text("ip, 10.0.0.2\n")
    assert before and fingerprint(str(path)) != before
