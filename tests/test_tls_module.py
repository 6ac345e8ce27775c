"""The tls module without Redis: certificate names, the ssl/x509 join, organisations."""

from __future__ import annotations

import importlib
import ipaddress
import itertools
from pathlib import Path
from typing import Any

import pytest

from slipsd.geoip import GeoIP
from slipsd.module_loader import ModuleRef, load_class
from slipsd.orgs import Organization, Organizations, load_organizations
from slipsd.testing import ModuleTestContext

from conftest import REPO
from geoip_dbs import write_geoip

FOLDER = REPO / "modules" / "tls"
Tls = load_class(ModuleRef("tls", path=str(FOLDER)))
# The folder is imported as a private package; its helpers module lives beside tls.py.
certs: Any = importlib.import_module(Tls.__module__.rsplit(".", 1)[0] + ".certs")
owners: Any = importlib.import_module(Tls.__module__.rsplit(".", 1)[0] + ".owners")
T0 = 1_700_000_000.0
_uids = itertools.count(1)
LE = "CN=R3,O=Let's Encrypt,C=US"


def ssl(ts: float = 0.0, src: str = "192.168.1.10", dst: str = "198.51.100.5",
        sni: str | None = "www.example.com", tw: int = 0, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "ts": T0 + ts, "uid": f"CSSL{next(_uids):010d}", "saddr": src, "sport": 50000,
        "daddr": dst, "dport": 443, "profile": src, "tw": tw, "version": "TLSv12",
        "established": True,
    }
    if sni is not None:
        event["server_name"] = sni
    event.update(fields)
    return event


def x509(ts: float, fp: str, subject: str, issuer: str = LE,
         sans: list[str] | None = None, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "ts": T0 + ts, "uid": "", "saddr": "", "daddr": "", "sport": 0, "dport": 0,
        "profile": "", "tw": 0, "fingerprint": fp, "certificate_subject": subject,
        "certificate_issuer": issuer, "san_dns": sans, "basic_constraints_ca": False,
        "host_cert": True, "client_cert": False,
    }
    event.update(fields)
    return event


def example_orgs() -> Organizations:
    return Organizations([
        Organization("exampleco", aliases=["ExampleCo"], asns={64500},
                     domains={"exampleco.com"},
                     networks=[ipaddress.ip_network("198.51.100.128/25")]),
        Organization("otherco", aliases=["OtherCo"], domains={"otherco.net"}),
    ])


def context(config: dict[str, str] | None = None, geoip: GeoIP | None = None,
            orgs: Organizations | None = None) -> ModuleTestContext:
    ctx = ModuleTestContext(Tls, config, geoip=geoip)
    if orgs is not None:
        ctx.module.owners = owners.Owners(orgs)  # type: ignore[attr-defined]
    return ctx


def kinds(found: list[Any]) -> list[tuple[str, str, str]]:
    return [(e.type, e.attacker, e.victim) for e in found]


# ---- certificate names ----------------------------------------------------------


@pytest.mark.parametrize(("pattern", "host", "expected"), [
    ("www.example.com", "www.example.com", True),
    ("*.example.com", "a.example.com", True),
    ("*.example.com", "a.b.example.com", False),
    ("*.example.com", "example.com", False),
    ("w*.example.com", "www.example.com", True),
    ("w*.example.com", "mail.example.com", False),
    ("*.com", "example.com", False),
    ("a.*.example.com", "a.b.example.com", False),
    ("www.example.com", "www.example.com.evil.net", False),
])
def test_wildcards(pattern: str, host: str, expected: bool) -> None:
    assert certs.covers(pattern, host) is expected


def test_distinguished_names() -> None:
    dn = "CN=*.adnxs.com,O=AppNexus\\, Inc.,L=New York,C=US"
    assert certs.parse_dn(dn)[:2] == [("CN", "*.adnxs.com"), ("O", "AppNexus, Inc.")]
    assert certs.common_names("CN=WWW.Example.COM.,O=X") == ["www.example.com"]
    public = ["O=Amazon", "O=Google Trust Services"]
    assert certs.issued_by_public_ca("CN=Amazon RSA 2048 M02,O=Amazon,C=US", public)
    assert certs.issued_by_public_ca("CN=WR2,O=Google Trust Services LLC", public)
    assert not certs.issued_by_public_ca("CN=Amazon,O=Amazonas Energia", public)
    assert not certs.issued_by_public_ca("CN=x,O=Google Inc", public)
    assert certs.issued_by_public_ca("CN=Cloudflare Inc ECC CA-3,O=Cloudflare\\, Inc.",
                                     ["O=Cloudflare"])
    assert certs.base_domain("a.b.example.co.uk") == "example.co.uk"
    assert certs.base_domain("*.cdn.example.com") == "example.com"


# ---- the ssl/x509 join ----------------------------------------------------------


@pytest.mark.parametrize("x509_first", [True, False])
def test_alternative_names_arrive_in_either_order(x509_first: bool) -> None:
    # The CN alone does not cover the SNI; the SANs of x509.log do.
    ctx = context(orgs=example_orgs())
    record = ssl(sni="shop.exampleco.com", cert_chain_fps=["F1"],
                 subject="CN=edge.cdn.example")
    cert = x509(0.05, "F1", "CN=edge.cdn.example", sans=["edge.cdn.example",
                                                         "shop.exampleco.com"])
    first, second = (("new_x509", cert), ("new_ssl", record)) if x509_first else \
        (("new_ssl", record), ("new_x509", cert))
    assert ctx.feed(*first) == []
    assert ctx.feed(*second) == []
    assert ctx.feed("new_x509", x509(500, "F9", "CN=later.example")) == []
    assert ctx.finish() == []


def test_without_x509_the_record_is_judged_from_ssl_log_when_the_window_closes() -> None:
    ctx = context(orgs=example_orgs())
    # CN-only knowledge: the SNI belongs to a known organisation, the CN to nobody.
    assert ctx.feed("new_ssl", ssl(sni="shop.exampleco.com", cert_chain_fuids=["F2"],
                                   subject="CN=edge.cdn.example", issuer=LE)) == []
    found = ctx.close_window("192.168.1.10", 0, start=T0, width=3600)
    assert kinds(found) == [("CN_SNI_MISMATCH", "192.168.1.10", "198.51.100.5")]
    assert found[0].confidence == 0.5
    assert ctx.finish() == []


def test_an_input_without_x509_log_has_the_record_judged_at_once() -> None:
    ctx = context(orgs=example_orgs())
    ctx.feed("new_input", {"source": "ssl.log", "log_types": ["ssl"]})
    found = ctx.feed("new_ssl", ssl(sni="shop.exampleco.com", cert_chain_fuids=["F2"],
                                    subject="CN=edge.cdn.example", issuer=LE))
    assert kinds(found) == [("CN_SNI_MISMATCH", "192.168.1.10", "198.51.100.5")]
    assert ctx.finish() == []


def test_waiting_ends_when_x509_log_moves_past_the_record() -> None:
    ctx = context({"hold_seconds": "30"}, orgs=example_orgs())
    assert ctx.feed("new_ssl", ssl(sni="a.otherco.net", cert_chain_fps=["F3"])) == []
    assert ctx.feed("new_x509", x509(29, "F4", "CN=other.example")) == []
    found = ctx.feed("new_x509", x509(31, "F5", "CN=other2.example"))
    # F3 never came: no names at all, so nothing to compare and nothing reported.
    assert found == []
    # A record whose certificate is known is judged at once, with its SANs.
    ctx.feed("new_x509", x509(40, "F6", "CN=x.example", sans=["x.example"]))
    found = ctx.feed("new_ssl", ssl(41, sni="a.otherco.net", cert_chain_fps=["F6"]))
    assert kinds(found) == [("CN_SNI_MISMATCH", "192.168.1.10", "198.51.100.5")]
    assert found[0].confidence == 0.8


def test_client_certificates_do_not_stand_for_the_server() -> None:
    ctx = context(orgs=example_orgs())
    ctx.feed("new_x509", x509(0, "F7", "CN=a.otherco.net", sans=["a.otherco.net"],
                              client_cert=True, host_cert=False))
    ctx.feed("new_x509", x509(0, "F7", "CN=server.example", sans=None))
    found = ctx.feed("new_ssl", ssl(1, sni="a.otherco.net", cert_chain_fps=["F7"]))
    assert kinds(found) == [("CN_SNI_MISMATCH", "192.168.1.10", "198.51.100.5")]
    assert "server.example" in found[0].description


# ---- organisations ----------------------------------------------------------------


def test_organisation_by_address_domain_and_as(tmp_path: Path) -> None:
    country, asn = write_geoip(tmp_path)
    ctx = context(geoip=GeoIP(str(country), str(asn)), orgs=example_orgs())
    claim = {"subject": "CN=portal.example,O=ExampleCo Inc", "issuer": "CN=Tiny CA",
             "validation_status": "unable to get local issuer certificate"}
    # ExampleCo's own network, its domain as SNI, and an address in its AS (64500).
    assert ctx.feed("new_ssl", ssl(dst="198.51.100.200", sni="portal.example", **claim)) == []
    found = ctx.feed("new_ssl", ssl(dst="198.51.100.7", sni="x.exampleco.com", **claim))
    assert [e.type for e in found] == ["CN_SNI_MISMATCH"]  # but no organisation problem
    assert ctx.feed("new_ssl", ssl(dst="203.0.113.9", sni="portal.example", **claim)) == []
    # Elsewhere, even for the name on the certificate: the chain is not trusted.
    found = ctx.feed("new_ssl", ssl(dst="198.51.100.7", sni="portal.example", **claim))
    assert kinds(found) == [("INCOMPATIBLE_CERTIFICATE_ORG", "192.168.1.10", "198.51.100.7")]
    assert "Exampleco" in found[0].description and "portal.example" in found[0].description
    # A trusted chain for the name asked is the organisation's own site on a CDN.
    trusted = dict(claim, validation_status="ok")
    assert ctx.feed("new_ssl", ssl(dst="198.51.100.8", sni="portal.example", **trusted)) == []


def test_one_organisations_ca_signing_anothers_certificate() -> None:
    ctx = context(orgs=example_orgs())
    found = ctx.feed("new_ssl", ssl(
        dst="198.51.100.130", sni="www.exampleco.com", subject="CN=www.exampleco.com",
        issuer="CN=OtherCo Issuing CA,O=OtherCo", validation_status="ok"))
    assert kinds(found) == [("INCOMPATIBLE_CERTIFICATE_ORG", "192.168.1.10", "198.51.100.130")]
    assert "Otherco" in found[0].description and found[0].confidence == 0.7


def test_shipped_organisations_are_used() -> None:
    ctx = context()
    assert ctx.module.owners.orgs is load_organizations()  # type: ignore[attr-defined]
    found = ctx.feed("new_ssl", ssl(dst="203.0.113.50", sni="netflix.com",
                                    subject="CN=www.google.com",
                                    issuer="CN=Google Internet Authority G2,O=Google Inc"))
    assert [e.type for e in found] == ["INCOMPATIBLE_CERTIFICATE_ORG", "CN_SNI_MISMATCH"]


# ---- bounds and determinism -------------------------------------------------------


def test_repeats_are_one_evidence_and_windows_are_apart() -> None:
    ctx = context({"evidence_limit": "3"})
    self_signed = {"validation_status": "self signed certificate", "subject": "CN=a",
                   "issuer": "CN=a"}
    for i in range(50):
        ctx.feed("new_ssl", ssl(i, sni=None, dst=f"198.51.100.{i % 5}", **self_signed))
    assert [e.victim for e in ctx.evidence] == ["198.51.100.0", "198.51.100.1", "198.51.100.2"]
    ctx.close_window("192.168.1.10", 0, start=T0)
    ctx.feed("new_ssl", ssl(4000, sni=None, tw=1, **self_signed))
    assert [(e.victim, e.tw) for e in ctx.evidence[3:]] == [("198.51.100.5", 1)]


def test_same_input_same_evidence() -> None:
    def run() -> list[str]:
        ctx = context(orgs=example_orgs())
        for i in range(20):
            ctx.feed("new_ssl", ssl(i, sni=f"h{i}.otherco.net", cert_chain_fps=[f"P{i % 4}"],
                                    dst=f"198.51.100.{i}"))
            ctx.feed("new_x509", x509(i + 0.5, f"P{i % 4}", f"CN=h{i}.example",
                                      sans=[f"h{i}.example"]))
        ctx.finish()
        return [e.id for e in ctx.evidence]

    first = run()
    assert first and first == run()


def test_local_servers_are_information_only() -> None:
    ctx = context(orgs=example_orgs())
    ctx.feed("new_x509", x509(0, "L1", "CN=printer", "CN=printer", sans=None))
    found = ctx.feed("new_ssl", ssl(1, dst="192.168.1.5", sni="printer.lan",
                                    cert_chain_fps=["L1"]))
    assert [(e.type, e.threat_level) for e in found] == [
        ("SELF_SIGNED_CERTIFICATE", "info"), ("CN_SNI_MISMATCH", "info")]
