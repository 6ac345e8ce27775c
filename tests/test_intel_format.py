"""slipsd.intel: feed lines, type inference, normalisation, and bad lines that are counted."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from slipsd.intel import FeedError, classify, load, normalize_domain, normalize_url, split_line


@pytest.mark.parametrize(("text", "kind", "key"), [
    ("203.0.113.7", "ip4", 0xCB007107),
    ("2001:db8::1", "ip6", 0x20010DB8 << 96 | 1),
    ("198.51.100.0/24", "net4", (24, 0xC6336400)),
    ("198.51.100.77/24", "net4", (24, 0xC6336400)),  # host bits cleared
    ("203.0.113.7/32", "ip4", 0xCB007107),  # a /32 is an address
    ("2001:db8::/32", "net6", (32, 0x20010DB8 << 96)),
    ("Evil.Example.", "domain", "evil.example"),
    ("*.evil.example", "domain", "evil.example"),
    ("xn--bcher-kva.example", "domain", "xn--bcher-kva.example"),
    ("bücher.example", "domain", "xn--bcher-kva.example"),
    ("http://Dl.Example.NET:80/Payload.exe#frag", "url", "dl.example.net/Payload.exe"),
    ("https://dl.example.net:443/a/", "url", "dl.example.net/a"),
    ("hxxp://dl.example.net/x?id=1", "url", "dl.example.net/x?id=1"),
    ("dl.example.net/x.exe", "url", "dl.example.net/x.exe"),
    ("203.0.113.7/x.exe", "url", "203.0.113.7/x.exe"),
    ("AS64496", "asn", 64496),
    ("asn 64497", "asn", 64497),
    ("44D88612FEA8A8F36DE82E1278ABB02F", "hash32", "44d88612fea8a8f36de82e1278abb02f"),
    ("3395856ce81f2b7382dee72602f798b642f14140", "file_hash",
     "3395856ce81f2b7382dee72602f798b642f14140"),
    ("t13d1516h2_8daaf6152771_e5627efa2ab1", "tls_fingerprint",
     "t13d1516h2_8daaf6152771_e5627efa2ab1"),
])
def test_inferred_types(text: str, kind: str, key: object) -> None:
    assert classify(text) == (kind, key)


@pytest.mark.parametrize(("text", "declared", "kind"), [
    ("44d88612fea8a8f36de82e1278abb02f", "md5", "file_hash"),
    ("44d88612fea8a8f36de82e1278abb02f", "ja3", "tls_fingerprint"),
    ("44d88612fea8a8f36de82e1278abb02f", "JA3S", "tls_fingerprint"),
    ("64496", "asn", "asn"),
    ("evil.example", "domain", "domain"),
    ("198.51.100.0/24", "cidr", "net4"),
    ("evil.example", "url", "url"),
])
def test_declared_types(text: str, declared: str, kind: str) -> None:
    assert classify(text, declared)[0] == kind


@pytest.mark.parametrize(("text", "declared", "message"), [
    ("localhost", None, "cannot tell"),
    ("64496", None, "cannot tell"),  # a bare number could be anything
    ("not an indicator", None, "cannot tell"),
    ("evil.example", "ip", "not a valid ip"),
    ("203.0.113.7", "cidr", "not a valid cidr"),
    ("44d88612fea8a8f36de82e1278abb02f", "sha1", "not a valid sha1"),
    ("203.0.113.7", "colour", "unknown type"),
    ("ftp://evil.example/x", None, "cannot tell"),
])
def test_invalid_indicators(text: str, declared: str | None, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        classify(text, declared)


def test_line_forms() -> None:
    assert split_line("  # a comment") is None
    assert split_line("; spamhaus style comment") is None
    assert split_line("") is None
    assert split_line("203.0.113.7").indicator == "203.0.113.7"  # type: ignore[union-attr]
    # plain lists: the first word; hosts files: the name after the sink address
    assert split_line("198.51.100.0/24 ; SBL123").indicator == "198.51.100.0/24"  # type: ignore[union-attr]
    assert split_line("0.0.0.0 evil.example").indicator == "evil.example"  # type: ignore[union-attr]
    assert split_line("evil.example # since 2024").indicator == "evil.example"  # type: ignore[union-attr]
    row = split_line('evil.example,high,"C&C, second stage",domain')
    assert row is not None
    assert (row.indicator, row.threat_level, row.description, row.type) == (
        "evil.example", "high", "C&C, second stage", "domain")
    row = split_line("evil.example,,")
    assert row is not None and row.threat_level is None and row.description is None
    with pytest.raises(FeedError, match="empty indicator"):
        split_line(",high,x")


def test_normalisation_of_traffic_values() -> None:
    assert normalize_domain("WWW.Evil.Example.") == "www.evil.example"
    assert normalize_domain("10.0.0.1") is None
    assert normalize_url("dl.example.net:80/x/", "http") == "dl.example.net/x"
    assert normalize_url("dl.example.net:8080/x", "http") == "dl.example.net:8080/x"
    assert normalize_url("http://user@DL.example.net/") == "dl.example.net/"


def test_load_counts_and_names_bad_lines(tmp_path: Path) -> None:
    feed = tmp_path / "mixed.csv"
    feed.write_text(
        "# a feed\n"
        "203.0.113.7,high,C&C\n"
        "evil.example,extreme,typo in the level\n"
        "nonsense\n"
        "198.51.100.0/24\n"
        "x.example,low,,colour\n"
    )
    plain = tmp_path / "plain.txt"
    plain.write_text("# plain\n203.0.113.8\n\n0.0.0.0 ads.example\n")
    ignored = tmp_path / "notes.md"  # not a feed suffix: not read
    ignored.write_text("nonsense\n")
    index, report = load([tmp_path, tmp_path / "missing.csv"], "low")
    assert report.files == 2 and report.indicators == 4
    assert report.problems == 4
    assert report.messages == [
        f"{feed}:3: unknown threat level 'extreme' (use info, low, medium, high, critical)",
        f"{feed}:4: cannot tell what kind of indicator 'nonsense' is",
        f"{feed}:6: unknown type 'colour' (use asn, cidr, domain, file_hash, hash, ip, ja3, "
        "ja3s, ja4, ja4s, md5, network, sha1, sha256, tls_fingerprint, url)",
        f"{tmp_path / 'missing.csv'}: no such file or folder",
    ]
    hit = index.ip("203.0.113.7")
    assert hit is not None and hit.source.threat_level == "high"
    assert hit.source.description == "C&C" and hit.source.feed == "mixed.csv"
    plain_hit = index.ip("203.0.113.8")
    assert plain_hit is not None and plain_hit.source.threat_level == "low"  # feed default
    assert index.domain("ads.example") is not None
    assert index.domain("evil.example") is None  # its line was rejected


def test_header_reorders_columns_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "feed.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("type,description,indicator,threat_level,first_seen\n"
                     "domain,Example phishing,phish.example,critical,2024-01-01\n")
    index, report = load([path])
    match = index.domain("login.phish.example")
    assert report.problems == 0
    assert match is not None and not match.exact
    assert (match.source.threat_level, match.source.description) == ("critical", "Example phishing")


def test_sources_are_shared_per_feed(tmp_path: Path) -> None:
    path = tmp_path / "many.txt"
    path.write_text("".join(f"10.{i // 256}.{i % 256}.1\n" for i in range(2000)))
    index, _ = load([path], "high")
    sources = {id(s) for s in index.ips[4].values()}
    assert len(index.ips[4]) == 2000 and len(sources) == 1
