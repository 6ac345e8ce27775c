"""The threat_intelligence module in a ModuleTestContext: every evidence type, no storms,
remote feeds in setup and in the background, and the shipped feed folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_intel_download import Server

from slipsd.geoip import GeoIP
from slipsd.module import Module
from slipsd.module_loader import ModuleRef, load_class
from slipsd.store import Store
from slipsd.testing import ModuleTestContext, make_flow

from conftest import REPO, module_dirs_conf, wait_for
from geoip_dbs import write_geoip

FEED = """indicator,threat_level,description,type
203.0.113.66,high,Example C&C server
198.51.100.0/24,medium,Example hostile network
evil.example,high,Example malware domain
http://dl.example.net/payload.exe,high,Example dropper
AS64501,low,Example hosting AS
e7d705a3286e19ea42f587b344ee6865,low,Tor client,ja3
3395856ce81f2b7382dee72602f798b642f14140,critical,Example dropper binary,sha1
"""


@pytest.fixture(scope="module")
def cls() -> type[Module]:
    return load_class(ModuleRef("threat_intelligence",
                                path=str(REPO / "modules" / "threat_intelligence")))


@pytest.fixture
def ctx(cls: type[Module], tmp_path: Path) -> Any:
    feed = tmp_path / "feed.csv"
    feed.write_text(FEED)
    _, asn_db = write_geoip(tmp_path / "geoip")
    context = ModuleTestContext(cls, {"local_feeds": str(feed)}, data_dir=tmp_path / "data",
                                geoip=GeoIP(asn_database=str(asn_db)))
    yield context
    context.finish()


def event(**fields: Any) -> dict[str, Any]:
    return make_flow(daddr="192.0.2.53", dport=53, **fields)


def test_blacklisted_ip_both_directions_once_per_window(ctx: Any) -> None:
    found = ctx.feed("new_flow", make_flow(daddr="203.0.113.66", dport=8443))
    assert [(e.type, e.attacker, e.victim, e.threat_level, e.confidence) for e in found] == [
        ("BLACKLISTED_IP", "192.168.1.10", "203.0.113.66", "high", 1.0)]
    assert found[0].description == ("192.168.1.10 connected to 203.0.113.66 on 8443/tcp, "
                                    "listed in feed.csv: Example C&C server")
    assert ctx.feed("new_flow", make_flow(daddr="203.0.113.66", dport=443)) == []
    incoming = ctx.feed("new_flow", make_flow(saddr="198.51.100.20", daddr="192.168.1.10",
                                              dport=22))
    assert [(e.attacker, e.victim, e.confidence) for e in incoming] == [
        ("198.51.100.20", "192.168.1.10", 0.8)]
    assert incoming[0].description.startswith(
        "traffic from 198.51.100.20 (in 198.51.100.0/24) to 192.168.1.10 on 22/tcp")
    assert ctx.close_window("192.168.1.10", 0) == []
    again = ctx.feed("new_flow", make_flow(daddr="203.0.113.66", tw=1, ts=1_700_003_700.0))
    assert [e.tw for e in again] == [1]


def test_listed_networks_match_public_addresses_only(cls: type[Module], tmp_path: Path) -> None:
    feed = tmp_path / "bogons.txt"
    feed.write_text("10.0.0.0/8\n192.168.1.77\n")
    ctx = ModuleTestContext(cls, {"local_feeds": str(feed)})
    assert ctx.feed("new_flow", make_flow(saddr="10.1.1.1", daddr="10.2.2.2")) == []
    found = ctx.feed("new_flow", make_flow(daddr="192.168.1.77"))
    assert [e.victim for e in found] == ["192.168.1.77"]  # a listed address always matches
    ctx.finish()


def test_domains_from_dns_http_and_sni(ctx: Any) -> None:
    dns = ctx.feed("new_dns", event(query="cdn.evil.example", answers=[], qtype_name="A"))
    assert [(e.type, e.confidence, e.victim) for e in dns] == [
        ("BLACKLISTED_DOMAIN", 0.6, "192.0.2.53")]
    assert "a subdomain of evil.example" in dns[0].description
    # the same listed domain, exact this time: a second, surer evidence; then nothing more
    http = ctx.feed("new_http", make_flow(host="EVIL.example:8080", uri="/x"))
    assert [(e.type, e.confidence) for e in http] == [("BLACKLISTED_DOMAIN", 1.0)]
    assert ctx.feed("new_ssl", make_flow(server_name="evil.example")) == []
    assert ctx.feed("new_ssl", make_flow(server_name="www.evil.example")) == []
    other = ctx.feed("new_ssl", make_flow(saddr="192.168.1.11", server_name="evil.example."))
    assert [e.attacker for e in other] == ["192.168.1.11"]
    assert ctx.feed("new_dns", event(query="notevil.example", answers=[])) == []


def test_dns_answers(ctx: Any) -> None:
    found = ctx.feed("new_dns", event(query="innocent.example", answers=[
        "192.0.2.1", "198.51.100.9", "alias.evil.example", "TXT 12 v=spf1 -all"]))
    assert [(e.type, e.confidence) for e in found] == [
        ("BLACKLISTED_DNS_ANSWER", 0.8), ("BLACKLISTED_DNS_ANSWER", 0.6)]
    assert "innocent.example holds 198.51.100.9 (in 198.51.100.0/24)" in found[0].description


def test_urls(ctx: Any) -> None:
    found = ctx.feed("new_http", make_flow(host="dl.example.net", uri="/payload.exe"))
    assert [(e.type, e.threat_level, e.confidence) for e in found] == [
        ("BLACKLISTED_URL", "high", 1.0)]
    proxied = ctx.feed("new_http", make_flow(saddr="192.168.1.12", host="",
                                             uri="http://dl.example.net/payload.exe?id=7"))
    assert [(e.type, e.confidence) for e in proxied] == [("BLACKLISTED_URL", 0.8)]
    assert ctx.feed("new_http", make_flow(host="dl.example.net", uri="/Payload.exe")) == []


def test_asn_of_contacted_address(ctx: Any) -> None:
    # 198.51.100.0/24 is AS64501 in the test database, and also a listed network
    found = ctx.feed("new_flow", make_flow(daddr="198.51.100.9"))
    assert [(e.type, e.victim, e.threat_level, e.confidence) for e in found] == [
        ("BLACKLISTED_IP", "198.51.100.9", "medium", 0.8),
        ("BLACKLISTED_ASN", "198.51.100.9", "low", 0.6)]
    assert "in AS64501 (Doc Net)" in found[1].description
    # one evidence per listed indicator (the network, the AS) and window
    assert ctx.feed("new_flow", make_flow(daddr="198.51.100.10")) == []
    assert ctx.feed("new_flow", make_flow(daddr="203.0.113.9")) == []  # AS64500: not listed


def test_tls_fingerprints(ctx: Any) -> None:
    found = ctx.feed("new_ssl", make_flow(daddr="192.0.2.80",
                                          ja3s="E7D705A3286E19EA42F587B344EE6865"))
    assert [(e.type, e.victim, e.threat_level) for e in found] == [
        ("MALICIOUS_TLS_FINGERPRINT", "192.0.2.80", "low")]
    assert "server JA3S E7D705A3286E19EA42F587B344EE6865" in found[0].description
    assert ctx.feed("new_ssl", make_flow(ja3="00000000000000000000000000000000")) == []


def test_file_hashes_count_towards_the_receiver(ctx: Any) -> None:
    sha1 = "3395856ce81f2b7382dee72602f798b642f14140"
    old = ctx.feed("new_downloaded_file", make_flow(
        saddr="192.0.2.7", daddr="192.168.1.10", tx_hosts=["192.0.2.7"],
        rx_hosts=["192.168.1.10"], sha1=sha1, md5="0" * 32, mime_type="application/x-dosexec"))
    assert [(e.attacker, e.victim, e.profile, e.threat_level) for e in old] == [
        ("192.168.1.10", "192.0.2.7", "192.168.1.10", "critical")]
    # Zeek >= 6: id fields of the connection, is_orig false = the server sent it
    new = ctx.feed("new_downloaded_file", make_flow(
        saddr="192.168.1.20", daddr="192.0.2.7", is_orig=False, sha1=sha1.upper()))
    assert [(e.attacker, e.victim) for e in new] == [("192.168.1.20", "192.0.2.7")]
    assert ctx.feed("new_downloaded_file", make_flow(sha256="ab" * 32)) == []


def test_evidence_limit_per_type_profile_and_window(cls: type[Module], tmp_path: Path) -> None:
    feed = tmp_path / "many.txt"
    feed.write_text("".join(f"203.0.113.{i}\n" for i in range(1, 101)))
    ctx = ModuleTestContext(cls, {"local_feeds": str(feed), "evidence_limit": "3"})
    found = [e for i in range(1, 101) for e in ctx.feed("new_flow",
                                                        make_flow(daddr=f"203.0.113.{i}"))]
    assert [e.victim for e in found] == ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
    ctx.finish()


def test_the_shipped_feed_folder_by_default(cls: type[Module]) -> None:
    ctx = ModuleTestContext(cls)
    eicar = ctx.feed("new_downloaded_file", make_flow(
        saddr="192.0.2.7", daddr="192.168.1.10", md5="44d88612fea8a8f36de82e1278abb02f",
        rx_hosts=["192.168.1.10"], tx_hosts=["192.0.2.7"]))
    assert [(e.type, e.threat_level) for e in eicar] == [("MALICIOUS_FILE_HASH", "info")]
    assert ctx.module.report.problems == 0
    ctx.finish()


def test_unavailable(cls: type[Module], tmp_path: Path) -> None:
    def reason(**raw: str) -> str | None:
        return cls.unavailable(cls.parse_options(raw))
    assert reason() is None
    assert "threat_level 'severe'" in str(reason(threat_level="severe"))
    assert "no such file" in str(reason(remote_feeds=str(tmp_path / "none.csv")))


def test_remote_feeds_in_setup_then_in_the_background(cls: type[Module], tmp_path: Path) -> None:
    server = Server()
    try:
        listing = tmp_path / "remote.csv"
        listing.write_text(f"{server.url},high,botnet c2,Example botnet\n")
        config = {"local_feeds": "", "remote_feeds": str(listing), "update_period": "3600",
                  "retry_period": "0"}
        ctx = ModuleTestContext(cls, config, data_dir=tmp_path / "data")
        found = ctx.feed("new_flow", make_flow(daddr="203.0.113.7"))
        assert [(e.threat_level, e.description.split(", ", 1)[1]) for e in found] == [
            ("high", f"listed in {ctx.module.feeds.remote[0].name} (botnet, c2): Example botnet")]
        ctx.finish()
        assert len(server.feed.requests) == 1
        # a later run, the server down: the copy in the data folder is used
        server.feed.status = 500
        ctx = ModuleTestContext(cls, {**config, "update_period": "0"},
                                data_dir=tmp_path / "data")
        assert ctx.feed("new_flow", make_flow(daddr="203.0.113.7")) != []
        # the server is back with a new list: the background refresh swaps the index in
        server.feed.status, server.feed.etag, server.feed.body = 200, '"v9"', b"192.0.2.99\n"
        wait_for(lambda: ctx.module.index.ip("192.0.2.99") is not None, 30, "a refresh")
        assert ctx.module.index.ip("203.0.113.7") is None
        assert ctx.feed("new_flow", make_flow(daddr="192.0.2.99")) != []
        ctx.finish()
        assert not ctx.module._thread.is_alive()
    finally:
        server.close()


def test_remote_feed_through_a_daemon(make_daemon: Any, tmp_path: Path) -> None:
    """The copy lives in <state_dir>/modules/threat_intelligence and outlives a server failure."""
    server = Server()
    try:
        listing = tmp_path / "remote.csv"
        listing.write_text(f"{server.url},high,botnet,Example botnet\n")
        logs = tmp_path / "zeek"
        logs.mkdir()
        (logs / "conn.log").write_text(json.dumps({
            "ts": 1_700_000_000.0, "uid": "CRemote0000000001", "id.orig_h": "192.168.1.10",
            "id.orig_p": 50000, "id.resp_h": "203.0.113.7", "id.resp_p": 443, "proto": "tcp",
            "service": "ssl", "duration": 1.0, "orig_bytes": 500, "resp_bytes": 900,
            "conn_state": "SF", "history": "ShADadFf", "orig_pkts": 5, "resp_pkts": 5}) + "\n")
        daemon = make_daemon(module_dirs_conf("threat_intelligence", (
            f"[threat_intelligence]\nlocal_feeds =\nremote_feeds = {listing}\n"
            "update_period = 0\nretry_period = 0\ndownload_timeout = 5\n")))

        def blacklisted(output: str) -> list[tuple[str, str]]:
            run = daemon.analyze(logs, tmp_path / output)
            assert run["state"] == "finished" and not run["problem"], run["problem"]
            return [(e["type"], e["victim"]) for e in
                    Store(daemon.redis(), run["id"]).all_evidence()]

        assert blacklisted("first") == [("BLACKLISTED_IP", "203.0.113.7")]
        cache = daemon.root / "state" / "modules" / "threat_intelligence" / "feeds"
        assert [p.read_bytes() for p in cache.glob("*.feed")] == [server.feed.body]
        server.feed.status = 500
        assert blacklisted("second") == [("BLACKLISTED_IP", "203.0.113.7")]
        # (the run's own background refresh may have asked again since: update_period 0)
        assert len(server.feed.requests) >= 2
        assert "If-None-Match" in server.feed.requests[1]
        assert "download failed (HTTP 500" in daemon.log_text()
    finally:
        server.close()
