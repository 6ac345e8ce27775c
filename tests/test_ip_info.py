"""ip_info: GeoIP from .mmdb files the tests write, MAC vendors from the IEEE list,
host names from DNS and DHCP, shown by slipsctl profile through a real slipsd."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from slipsctl.cli import app
from slipsd.geoip import GeoIP
from slipsd.module_loader import ModuleRef, load_class
from slipsd.testing import ModuleTestContext, make_flow

from conftest import REPO, module_dirs_conf
from geoip_dbs import write_geoip
from zeekgen import conn_record, write_conn_log, write_log

IpInfo = load_class(ModuleRef("ip_info", path=str(REPO / "modules" / "ip_info")))
OUI = "OUI/MA-L\n\n00-22-72   (hex)\t\tAmerican Micro-Fuel Device Corp.\n" \
      "08-00-27   (hex)\t\tPCS Systemtechnik GmbH\n"


def test_geoip_lookups(tmp_path: Path) -> None:
    country, asn = write_geoip(tmp_path)
    geo = GeoIP(str(country), str(asn))
    assert geo.country("203.0.113.7") == "NL"
    assert geo.country("203.0.113.200") is None  # outside the /25
    assert geo.asn("203.0.113.200") == (64500, "Example Transit")
    assert geo.country("2001:db8:1::5") == "CZ"
    assert geo.country("192.168.1.1") is None  # private: never looked up
    assert geo.country("not an ip") is None
    assert GeoIP(str(tmp_path / "missing.mmdb")).country("203.0.113.7") is None


def test_unreadable_database_turns_lookups_off(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a database")
    assert GeoIP(str(bad)).country("203.0.113.7") is None
    assert f"cannot read the country database {bad}" in caplog.text


def test_module_in_isolation(tmp_path: Path) -> None:
    country, asn = write_geoip(tmp_path)
    oui = tmp_path / "oui.txt"
    oui.write_text(OUI)
    ctx = ModuleTestContext(IpInfo, {"oui_file": str(oui)}, geoip=GeoIP(str(country), str(asn)))
    ctx.feed("new_ip", {"ip": "203.0.113.9", "ts": 1.0})
    ctx.feed("new_ip", {"ip": "192.168.1.20", "ts": 1.0})
    ctx.feed("new_flow", make_flow(saddr="192.168.1.20", smac="08:00:27:AA:BB:CC"))
    ctx.feed("new_flow", make_flow(saddr="203.0.113.9", smac="00:22:72:00:00:01"))
    ctx.feed("new_dns", {"ts": 2.0, "query": "www.example.org",
                         "answers": ["203.0.113.9", "www.cdn.example"], "saddr": "192.168.1.20"})
    ctx.feed("new_dhcp", {"ts": 3.0, "saddr": "192.168.1.30", "mac": "00:22:72:01:02:03",
                          "host_name": "printer"})
    assert ctx.ip_infos["203.0.113.9"] == {
        "country": "NL", "asn": 64500, "as_org": "Example Transit",
        "host_names": ["www.example.org"]}
    assert ctx.ip_infos["192.168.1.20"] == {"mac": "08:00:27:aa:bb:cc",
                                            "mac_vendor": "PCS Systemtechnik GmbH"}
    assert ctx.ip_infos["192.168.1.30"] == {
        "mac": "00:22:72:01:02:03", "mac_vendor": "American Micro-Fuel Device Corp.",
        "host_names": ["printer"]}
    assert ctx.evidence == []


def test_shown_by_slipsctl_profile(make_daemon: Any, tmp_path: Path) -> None:
    country, asn = write_geoip(tmp_path / "geo")
    oui = tmp_path / "oui.txt"
    oui.write_text(OUI)
    daemon = make_daemon(module_dirs_conf(
        "ip_info", f"[geoip]\ncountry_database = {country}\nasn_database = {asn}\n"
        f"[ip_info]\noui_file = {oui}\n"))
    logs = tmp_path / "logs"
    logs.mkdir()
    write_conn_log(str(logs / "conn.log"), [
        conn_record(1_700_000_000.0, "CIPINFO00001", "192.168.1.20", 40000, "198.51.100.4",
                    443, conn_state="SF", orig_l2_addr="08:00:27:01:02:03")])
    write_log(str(logs / "dns.log"), "dns", [{
        "ts": 1_699_999_999.0, "uid": "CIPINFO00002", "id.orig_h": "192.168.1.20",
        "id.orig_p": 5353, "id.resp_h": "192.168.1.1", "id.resp_p": 53, "proto": "udp",
        "query": "update.example.com", "qtype_name": "A", "rcode_name": "NOERROR",
        "answers": ["198.51.100.4"], "TTLs": [60.0]}])
    run = daemon.analyze(logs)
    assert run["state"] == "finished", run
    runner = CliRunner()
    shown = runner.invoke(app, ["profile", "198.51.100.4", "--json", "--socket",
                                str(daemon.socket)])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["ip_info"] == {
        "as_org": "Doc Net", "asn": 64501, "country": "US",
        "host_names": ["update.example.com"]}
    text = runner.invoke(app, ["profile", "192.168.1.20", "--socket", str(daemon.socket)])
    assert "mac_vendor: PCS Systemtechnik GmbH" in text.output
