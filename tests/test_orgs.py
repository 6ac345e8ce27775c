"""slipsd.orgs: the shipped organisation data and its lookups."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from slipsd.netinfo import shipped_data
from slipsd.orgs import (
    OrgDataError,
    PrefixMap,
    load_organizations,
    name_values,
    normalize_name,
    parse_organization,
)

REQUIRED = {"google", "microsoft", "apple", "facebook", "amazon", "netflix", "cloudflare",
            "akamai"}


def test_shipped_organisations_load_and_cover_the_big_ones() -> None:
    orgs = load_organizations()
    assert set(orgs.names()) >= REQUIRED
    for name in REQUIRED:
        org = orgs.get(name)
        assert org is not None
        assert org.domains and org.asns and org.networks, name
        # Both address families, so IPv6 traffic is recognised too.
        assert {net.version for net in org.networks} == {4, 6}, name


def test_shipped_data_has_no_overlap_between_organisations() -> None:
    """Two organisations claiming one network or domain would make owner_of_* arbitrary."""
    orgs = load_organizations()
    nets: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
    domains: dict[str, str] = {}
    asns: dict[int, str] = {}
    for name in orgs.names():
        org = orgs.get(name)
        assert org is not None
        nets += [(net, name) for net in org.networks]
        for domain in org.domains:
            assert domains.setdefault(domain, name) == name, domain
        for asn in org.asns:
            assert asns.setdefault(asn, name) == name, asn
    for i, (a, owner_a) in enumerate(nets):
        for b, owner_b in nets[i + 1:]:
            if a.version == b.version and owner_a != owner_b:
                assert not a.overlaps(b), (a, owner_a, b, owner_b)  # type: ignore[arg-type]


@pytest.mark.parametrize(("ip", "owner"), [
    ("8.8.8.8", "google"), ("142.250.185.78", "google"), ("2a00:1450:4001:82b::200e", "google"),
    ("17.253.144.10", "apple"), ("157.240.1.35", "facebook"), ("2a03:2880:f10c:83:face:b00c::25de",
                                                               "facebook"),
    ("1.1.1.1", "cloudflare"), ("2606:4700:4700::1111", "cloudflare"),
    ("13.107.42.14", "microsoft"), ("23.246.2.131", "netflix"), ("23.1.2.3", "akamai"),
    ("54.239.28.85", "amazon"),
    ("192.168.1.10", None), ("198.51.100.7", None), ("not-an-ip", None), ("", None),
])
def test_owner_of_ip(ip: str, owner: str | None) -> None:
    assert load_organizations().owner_of_ip(ip) == owner


@pytest.mark.parametrize(("name", "owner"), [
    ("google.com", "google"), ("www.google.com", "google"), ("WWW.YouTube.COM.", "google"),
    ("scontent.xx.fbcdn.net", "facebook"), ("a.b.c.akamaiedge.net", "akamai"),
    ("ocsp.apple.com", "apple"), ("occ-0-1.1.nflxso.net", "netflix"),
    # Look-alikes and parents that are not the organisation's.
    ("evilgoogle.com", None), ("google.com.evil.example", None), ("com", None),
    ("googleusercontent.com", None), ("s3.amazonaws.com", None), ("", None),
])
def test_owner_of_domain(name: str, owner: str | None) -> None:
    assert load_organizations().owner_of_domain(name) == owner


@pytest.mark.parametrize(("text", "owner"), [
    # Zeek x509 / ssl subject and issuer strings
    ("CN=*.google.com,O=Google LLC,L=Mountain View,ST=California,C=US", "google"),
    ("CN=GTS CA 1C3,O=Google Trust Services LLC,C=US", "google"),
    ("CN=*.facebook.com,O=Meta Platforms\\, Inc.,L=Menlo Park,ST=California,C=US", "facebook"),
    ("CN=Microsoft Azure TLS Issuing CA 01,O=Microsoft Corporation,C=US", "microsoft"),
    ("CN=Amazon RSA 2048 M01,O=Amazon,C=US", "amazon"),
    ("CN=www.amazon.com,O=Amazon.com\\, Inc.,C=US", "amazon"),
    ("CN=Akamai Technologies\\, Inc.", "akamai"),
    # Suricata's and OpenSSL's spellings
    ("C=US, O=Cloudflare, Inc., CN=Cloudflare Inc ECC CA-3", "cloudflare"),
    ("/C=US/O=Apple Inc./CN=Apple Public Server RSA CA 12 - G1", "apple"),
    ("O=NETFLIX\\, INC.", "netflix"),
    # A bare name, not a DN
    ("Google LLC", "google"),
    # Names that merely contain or start with an organisation's name
    ("CN=shop.example,O=Googleplex Bakery,C=US", None),
    ("O=Google Bakery Ltd", None),
    ("O=Applebee's Restaurants", None),
    ("CN=*.google.com", None),  # a host name is not an organisation's name
    ("C=US, ST=California", None),
    ("", None),
])
def test_named_in(text: str, owner: str | None) -> None:
    assert load_organizations().named_in(text) == owner


def test_asn_owner() -> None:
    orgs = load_organizations()
    assert orgs.asn_owner(15169) == "google"
    assert orgs.asn_owner(13335) == "cloudflare"
    assert orgs.asn_owner(64500) is None


def test_name_helpers() -> None:
    assert normalize_name("Google, L.L.C.") == "google"
    assert normalize_name("Meta Platforms, Inc.") == "meta platforms"
    assert normalize_name("Co") == "co"  # a name is never emptied by its legal form
    assert name_values("CN=a\\,b, O=x/y, C=US") == ["a,b", "x/y"]


def test_prefix_map_longest_prefix_wins() -> None:
    table = PrefixMap()
    table.add(ipaddress.ip_network("10.0.0.0/8"), "wide")
    table.add(ipaddress.ip_network("10.1.0.0/16"), "narrow")
    table.add(ipaddress.ip_network("2001:db8::/32"), "six")
    table.add(ipaddress.ip_network("0.0.0.0/0"), "default")
    assert table.get("10.1.2.3") == "narrow"
    assert table.get("10.2.0.1") == "wide"
    assert table.get("11.0.0.1") == "default"
    assert table.get("2001:db8::1") == "six"
    assert table.get("2001:db9::1") is None
    assert len(table) == 4


def test_own_data_folder_and_bad_lines(tmp_path: Path) -> None:
    (tmp_path / "example.txt").write_text(
        "# a test organisation\nalias: Example Corp\nasn: AS64500, 64501\n"
        "domain: example.com\nnetwork: 198.51.100.0/24, 2001:db8::/32\n")
    orgs = load_organizations(str(tmp_path))
    assert orgs.names() == ["example"]
    assert orgs.owner_of_ip("198.51.100.20") == "example"
    assert orgs.asn_owner(64501) == "example"
    assert orgs.named_in("O=Example Corporation") == "example"
    bad = tmp_path / "broken.txt"
    bad.write_text("domain: example.org\nnetwork: 300.1.2.0/24\n")
    with pytest.raises(OrgDataError, match=r"broken\.txt:2: network '300\.1\.2\.0/24'"):
        parse_organization(bad)
    bad.write_text("country: NL\n")
    with pytest.raises(OrgDataError, match=r"broken\.txt:1: expected"):
        parse_organization(bad)


def test_data_folder_is_documented() -> None:
    readme = (shipped_data("organizations") / "README").read_text()
    assert "APPROXIMATE" in readme
