"""The http module fed directly: pairing of TLS and conn records, bounds, lists, helpers."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

from slipsd.module_loader import ModuleRef, load_class
from slipsd.testing import ModuleTestContext, make_flow

from conftest import REPO

FOLDER = REPO / "modules" / "http"
HTTP = load_class(ModuleRef("http", path=str(FOLDER)))
helpers = sys.modules[HTTP.__module__.rpartition(".")[0] + ".helpers"]
_uids = itertools.count(1)
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/120.0.0.0 Safari/537.36")


def event(**fields: Any) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "ts": 1_700_000_000.0, "uid": f"CH{next(_uids):016d}", "saddr": "192.168.1.10",
        "sport": 40000, "daddr": "203.0.113.5", "dport": 80, "tw": 0, "method": "GET",
        "host": "www.example.com", "uri": "/", "user_agent": CHROME, "request_body_len": 0,
        "response_body_len": 1000,
    }
    ev.update(fields)
    ev.setdefault("profile", ev["saddr"])
    return ev


def ssl(uid: str, ts: float, server_name: str = "pastebin.com") -> dict[str, Any]:
    return {"ts": ts, "uid": uid, "saddr": "192.168.1.10", "sport": 50000,
            "daddr": "203.0.113.80", "dport": 443, "tw": 0, "profile": "192.168.1.10",
            "server_name": server_name, "established": True}


def tls_flow(uid: str, ts: float, dbytes: int = 9000) -> dict[str, Any]:
    return make_flow(uid=uid, ts=ts, daddr="203.0.113.80", dport=443, service="ssl",
                     dbytes=dbytes, duration=3.0)


def test_paste_site_over_tls_pairs_in_either_order() -> None:
    ctx = ModuleTestContext(HTTP)
    assert ctx.feed("new_ssl", ssl("CSSLFIRST", 1000.0)) == []
    found = ctx.feed("new_flow", tls_flow("CSSLFIRST", 999.9))
    assert [(e.type, e.victim, e.uids) for e in found] == [
        ("PASTEBIN_DOWNLOAD", "203.0.113.80", ("CSSLFIRST",))]
    assert "9000 bytes" in found[0].description and found[0].confidence == 0.5

    other = ModuleTestContext(HTTP)
    assert other.feed("new_flow", tls_flow("CCONNFIRST", 999.9)) == []
    found = other.feed("new_ssl", ssl("CCONNFIRST", 1000.0))
    assert [e.type for e in found] == ["PASTEBIN_DOWNLOAD"]
    # Nothing is left waiting once a pair is made.
    pairs = other.module.pairs  # type: ignore[attr-defined]
    assert not pairs.received and not pairs.waiting


def test_tls_pairing_forgets_by_traffic_time_and_stays_bounded() -> None:
    ctx = ModuleTestContext(HTTP)
    mod: Any = ctx.module
    ctx.feed("new_ssl", ssl("CLATE", 1000.0))
    # Ten thousand big TLS downloads to other sites, one a second, never named by ssl.log.
    for i in range(10_000):
        ctx.feed("new_flow", tls_flow(f"CBIG{i}", 1001.0 + i, dbytes=50_000))
    assert len(mod.pairs.received) < 400  # only the last CONN_WAIT seconds or so are kept
    assert "CLATE" not in mod.pairs.waiting  # waited TLS_WAIT traffic seconds, then dropped
    assert ctx.feed("new_flow", tls_flow("CLATE", 1000.0)) == []


def test_small_tls_transfer_and_other_sites_are_not_reported() -> None:
    ctx = ModuleTestContext(HTTP, {"pastebin_bytes": "5000"})
    ctx.feed("new_ssl", ssl("CSMALL", 10.0))
    assert ctx.feed("new_flow", tls_flow("CSMALL", 9.0, dbytes=4999)) == []
    ctx.feed("new_ssl", ssl("CNEWS", 11.0, server_name="news.example.com"))
    assert ctx.feed("new_flow", tls_flow("CNEWS", 10.0, dbytes=10**6)) == []


def test_empty_connections_report_at_powers_of_ten() -> None:
    ctx = ModuleTestContext(HTTP)
    found = [e for i in range(450)
             for e in ctx.feed("new_http", event(ts=float(i), host="www.google.co.uk",
                                                 response_body_len=0))]
    assert [(e.type, e.confidence) for e in found] == [
        ("EMPTY_CONNECTIONS", 0.5), ("EMPTY_CONNECTIONS", 1.0), ("EMPTY_CONNECTIONS", 1.0)]
    assert [e.description.split(" made ")[1].split()[0] for e in found] == ["4", "40", "400"]
    assert len(found[-1].uids) == 10


def test_reports_per_window_are_capped_and_start_again_next_window() -> None:
    ctx = ModuleTestContext(HTTP)

    def downloads(tw: int) -> list[Any]:
        return [e for i in range(20) for e in ctx.feed("new_http", event(
            tw=tw, daddr=f"203.0.113.{i}", host=f"dl{i}.example.com",
            resp_mime_types=["application/x-dosexec"]))]

    assert len(downloads(0)) == 5
    assert ctx.close_window("192.168.1.10", 0) == []
    assert len(downloads(1)) == 5
    assert not ctx.module.windows.state.get(0)  # type: ignore[attr-defined]


def test_multiple_user_agents_once_per_window() -> None:
    ctx = ModuleTestContext(HTTP)
    linux = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
    android = "Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A)"
    assert ctx.feed("new_http", event(user_agent=CHROME)) == []
    assert ctx.feed("new_http", event(user_agent="curl/8.4.0")) == []
    found = ctx.feed("new_http", event(user_agent=linux))
    assert [e.type for e in found] == ["MULTIPLE_USER_AGENTS"]
    assert "Windows" in found[0].description and "Linux" in found[0].description
    assert ctx.feed("new_http", event(user_agent=android)) == []
    ctx.close_window("192.168.1.10", 0)
    assert ctx.feed("new_http", event(user_agent=linux, tw=1)) == []

    tolerant = ModuleTestContext(HTTP, {"user_agent_families": "2"})
    for agent in (CHROME, linux):
        assert tolerant.feed("new_http", event(user_agent=agent)) == []
    assert len(tolerant.feed("new_http", event(user_agent=android))) == 1


def test_executable_from_files_log_new_format_and_ignored_sources() -> None:
    ctx = ModuleTestContext(HTTP)
    base = {"ts": 5.0, "uid": "CFTP", "saddr": "192.168.1.30", "sport": 40000,
            "daddr": "203.0.113.40", "dport": 20, "tw": 0, "profile": "192.168.1.30",
            "mime_type": "application/x-dosexec", "is_orig": False, "seen_bytes": 100}
    assert ctx.feed("new_downloaded_file", {**base, "source": "SMB"}) == []
    assert ctx.feed("new_downloaded_file", {**base, "source": "HTTP"}) == []
    found = ctx.feed("new_downloaded_file", {**base, "source": "FTP_DATA"})
    assert [(e.attacker, e.victim, e.profile) for e in found] == [
        ("192.168.1.30", "203.0.113.40", "192.168.1.30")]
    # Active FTP: the server opened the data connection and sent the file to its peer.
    pushed = ctx.feed("new_downloaded_file", {**base, "source": "FTP_DATA", "is_orig": True,
                                              "saddr": "203.0.113.41", "daddr": "192.168.1.31",
                                              "profile": "203.0.113.41"})
    assert [(e.attacker, e.victim, e.profile) for e in pushed] == [
        ("192.168.1.31", "203.0.113.41", "192.168.1.31")]


def test_user_agent_list_from_the_configuration(tmp_path: Path) -> None:
    listing = tmp_path / "agents.txt"
    listing.write_text("# mine\n\nEvilBot\n=\n")
    ctx = ModuleTestContext(HTTP, {"user_agents_file": str(listing)})
    assert ctx.feed("new_http", event(user_agent="sqlmap/1.7")) == []  # not in this list
    assert len(ctx.feed("new_http", event(user_agent="x evilbot/2"))) == 1
    assert len(ctx.feed("new_http", event(user_agent="", daddr="203.0.113.9"))) == 1
    absent = event(daddr="203.0.113.10")
    del absent["user_agent"]
    assert ctx.feed("new_http", absent) == []


def test_unavailable_names_an_unreadable_list(tmp_path: Path) -> None:
    defaults = HTTP.parse_options({})
    assert HTTP.unavailable(defaults) is None
    missing = HTTP.parse_options({"paste_sites_file": str(tmp_path / "nope.txt")})
    reason = HTTP.unavailable(missing)
    assert reason is not None and "nope.txt" in reason


def test_same_input_same_evidence_ids() -> None:
    def run() -> list[str]:
        ctx = ModuleTestContext(HTTP)
        for i in range(12):
            ctx.feed("new_http", event(uid=f"CDET{i}", ts=float(i), host="bing.com",
                                       response_body_len=0, user_agent="Mozila/5.0"))
        ctx.feed("new_weird", {**event(uid="CW"), "name": "unknown_HTTP_method",
                               "addl": "H4X"})
        return [e.id for e in ctx.evidence]

    first = run()
    assert len(first) == 3 and first == run()


def test_hosts_lists_and_families() -> None:
    engines = helpers.DomainList(["google.*", "bing.com"])
    assert engines.match("www.google.co.uk") == "google.*"
    assert engines.match("google.cz") == "google.*"
    assert engines.match("c.bing.com") == "bing.com"
    for other in ("google.evil.com", "notgoogle.com", "bing.com.evil.net", ""):
        assert engines.match(other) is None, other
    assert helpers.normalize_host("WWW.Google.com.:8080") == "www.google.com"
    assert helpers.normalize_host("[2001:db8::1]:80") == "2001:db8::1"
    assert helpers.normalize_host(None) == ""
    family = helpers.os_family
    assert family("Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X)") == "Apple"
    assert family("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) Chrome/120") == "Android/ChromeOS"
    assert family("Mozilla/5.0 (Linux; Android 13) Chrome/120 Mobile") == "Android/ChromeOS"
    assert family("Microsoft-CryptoAPI/10.0") == "Windows"
    assert family("python-requests/2.31") is None
    assert helpers.clip("a\nb" + "x" * 200, 10) == "a\\x0abx..."


def test_empty_connections_list_few_hosts_per_window() -> None:
    ctx = ModuleTestContext(HTTP)
    found = [e for n in range(12) for _ in range(4) for e in ctx.feed(
        "new_http", event(host=f"www.google.{n:02d}x", response_body_len=0))]
    assert len(found) == 5
    # a host already reported still climbs the levels
    more = [e for _ in range(36) for e in ctx.feed(
        "new_http", event(host="www.google.00x", response_body_len=0))]
    assert [e.description.split(" made ")[1].split()[0] for e in more] == ["40"]
