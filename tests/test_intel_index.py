"""slipsd.intel.Index: what matches what, and which entry wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipsd.intel import FeedInfo, Index, Loader, classify, normalize_url


def index_of(*lines: str, level: str = "medium") -> Index:
    loader = Loader()
    loader.load_lines(lines, FeedInfo("test", level), "test")
    assert loader.report.problems == 0, loader.report.messages
    return loader.index


def test_addresses_and_networks() -> None:
    index = index_of("203.0.113.7,high,host", "203.0.113.0/24,low,net24",
                     "203.0.0.0/16,medium,net16", "2001:db8::/48,high,v6 net",
                     "2001:db8:1::5,critical,v6 host")
    exact = index.ip("203.0.113.7")
    assert exact is not None and exact.exact and exact.source.description == "host"
    longest = index.ip("203.0.113.8")
    assert longest is not None and longest.indicator == "203.0.113.0/24" and not longest.exact
    wider = index.ip("203.0.7.1")
    assert wider is not None and wider.indicator == "203.0.0.0/16"
    assert index.ip("203.1.0.1") is None
    assert index.ip("203.0.113.8", networks=False) is None
    v6 = index.ip("2001:db8:0:1::99")
    assert v6 is not None and v6.indicator == "2001:db8::/48"
    v6_host = index.ip("2001:DB8:1:0::5")  # any spelling of the same address
    assert v6_host is not None and v6_host.exact and v6_host.source.threat_level == "critical"
    assert index.ip("2001:db9::1") is None
    assert index.ip("not-an-ip") is None and index.ip("") is None
    # an IPv4 address never matches an IPv6 network with the same integer bits
    assert index_of("::/96").ip("0.0.0.1") is None


def test_domains_walk_up_their_labels() -> None:
    index = index_of("evil.example", "deep.sub.other.example")
    for name in ("evil.example", "EVIL.example.", "a.b.evil.example"):
        match = index.domain(name)
        assert match is not None and match.indicator == "evil.example"
        assert match.exact == (name.lower().rstrip(".") == "evil.example")
    assert index.domain("notevil.example") is None  # a suffix, not a parent
    assert index.domain("example") is None
    assert index.domain("sub.other.example") is None  # a parent of a listed name
    assert index.domain("x.deep.sub.other.example") is not None


def test_urls_normalised_on_both_sides() -> None:
    index = index_of("http://DL.example.net:80/Payload.exe", "dl.example.net/dir/",
                     "https://x.example/q?id=1")
    assert index.url(normalize_url("dl.example.net/Payload.exe", "http") or "") is not None
    assert index.url(normalize_url("dl.example.net/payload.exe", "http") or "") is None
    assert index.url(normalize_url("dl.example.net/dir", "http") or "") is not None
    with_query = index.url(normalize_url("dl.example.net/Payload.exe?a=1", "http") or "")
    assert with_query is not None and not with_query.exact
    assert index.url(normalize_url("x.example/q?id=1", "http") or "") is not None
    assert index.url(normalize_url("x.example/q?id=2", "http") or "") is None


def test_hashes_fingerprints_and_asns() -> None:
    index = index_of("44d88612fea8a8f36de82e1278abb02f",  # plain 32 hex digits: both kinds
                     "3395856ce81f2b7382dee72602f798b642f14140,high,x,sha1",
                     "e7d705a3286e19ea42f587b344ee6865,low,Tor client,ja3",
                     "t13d1516h2_8daaf6152771_e5627efa2ab1", "AS64496")
    assert index.file_hash("44D88612FEA8A8F36DE82E1278ABB02F") is not None
    assert index.tls_fingerprint("44d88612fea8a8f36de82e1278abb02f") is not None
    assert index.file_hash("3395856ce81f2b7382dee72602f798b642f14140") is not None
    assert index.tls_fingerprint("3395856ce81f2b7382dee72602f798b642f14140") is None
    assert index.file_hash("e7d705a3286e19ea42f587b344ee6865") is None  # declared ja3
    assert index.tls_fingerprint("E7D705A3286E19EA42F587B344EE6865") is not None
    assert index.tls_fingerprint("t13d1516h2_8daaf6152771_e5627efa2ab1") is not None
    assert index.file_hash("zz") is None and index.tls_fingerprint("xyz") is None
    asn = index.asn(64496)
    assert asn is not None and asn.indicator == "AS64496"
    assert index.asn(64497) is None
    assert index.counts() == {"ip": 0, "network": 0, "domain": 0, "url": 0, "asn": 1,
                              "file_hash": 2, "tls_fingerprint": 3}


def test_the_highest_threat_level_wins_then_the_first() -> None:
    index = index_of("203.0.113.7,low,first", "203.0.113.7,high,second",
                     "203.0.113.7,medium,third", "203.0.113.7,high,fourth")
    match = index.ip("203.0.113.7")
    assert match is not None and match.source.description == "second"


def test_adding_an_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown indicator kind"):
        Index().add("colour", "red", index_of("evil.example").domains["evil.example"])


def test_listed_in_names_feed_tags_and_description(tmp_path: Path) -> None:
    loader = Loader()
    loader.load_lines(["203.0.113.7"], FeedInfo("remote/x.txt", "high", "Botnet C&C",
                                                ("botnet", "c2")), "x")
    match = loader.index.ip("203.0.113.7")
    assert match is not None
    assert match.listed_in() == "listed in remote/x.txt (botnet, c2): Botnet C&C"
    assert classify("203.0.113.7")[0] == "ip4"
