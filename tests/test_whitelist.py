"""The whitelist: its file, and the traffic and evidence it drops (the configuration and a
real daemon applying it are in test_whitelist_daemon.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

from slipsd.geoip import GeoIP
from slipsd.orgs import load_organizations
from slipsd.whitelist import MAX_RESOLVED, fingerprint, parse_line, read_whitelist

REPO = Path(__file__).resolve().parents[1]


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


def test_fingerprint_changes_with_the_content(tmp_path: Path) -> None:
    path = tmp_path / "w.conf"
    assert fingerprint("") == fingerprint(str(path)) == ""
    path.write_text("ip, 10.0.0.1\n")
    before = fingerprint(str(path))
    path.write_text("ip, 10.0.0.2\n")
    assert before and fingerprint(str(path)) != before


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
