"""The virustotal module against a real local HTTP server speaking the v3 JSON shapes
(the runs through slipsd are in test_virustotal_daemon.py)."""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from slipsd.module import Module
from slipsd.module_loader import ModuleRef, load_class
from slipsd.testing import ModuleTestContext

from conftest import REPO, wait_for
from vt_server import KEY, VTServer, reputation, scores

CLS: type[Module] = load_class(ModuleRef("virustotal", path=str(REPO / "modules" / "virustotal")))
LOGGER = "slips.module.virustotal"


def load_helper(name: str) -> Any:
    """A helper module of the folder, under the private package name the loader gave it."""
    return importlib.import_module(f"{CLS.__module__.rsplit('.', 1)[0]}.{name}")


@pytest.fixture
def vt() -> Any:
    with VTServer() as server:
        yield server


def key_file(folder: Path, text: str = KEY + "\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vt.key"
    path.write_text(text)
    return path


def context(tmp_path: Path, url: str, **options: Any) -> ModuleTestContext:
    config = {"api_key_file": str(key_file(tmp_path / "key")), "url": url,
              "requests_per_minute": "60000", "backoff": "0.05", "max_backoff": "0.2"}
    config.update({k: str(v) for k, v in options.items()})
    return ModuleTestContext(CLS, config, data_dir=tmp_path / "data")


def new_ips(ctx: ModuleTestContext, ips: list[str]) -> None:
    for ip in ips:
        ctx.feed("new_ip", {"ip": ip, "ts": 1_700_000_000.0})


def counts(ctx: ModuleTestContext) -> Any:
    return ctx.module.lookups.counts  # type: ignore[attr-defined]


def most_in_window(times: list[float], window: float) -> int:
    """The largest number of requests that fall in any half-open window of this length."""
    ordered = sorted(times)
    return max(sum(1 for t in ordered[i:] if t < start + window)
               for i, start in enumerate(ordered))


# --- unavailable() -------------------------------------------------------------------


def reason(**options: str) -> str | None:
    return CLS.unavailable(CLS.parse_options(options))


def test_unavailable_without_a_usable_key_file(tmp_path: Path) -> None:
    assert reason() == "api_key_file is not set"
    missing = tmp_path / "nope.key"
    assert reason(api_key_file=str(missing)) == f"api_key_file {missing}: no such file"
    for text in ("abc\n", KEY[:-1] + "g\n", f"{KEY}\n{KEY}\n", KEY + "0\n", ""):
        path = key_file(tmp_path / "bad", text)
        why = reason(api_key_file=str(path))
        assert why is not None and "expected one line of 64 hexadecimal characters" in why, text
    folder = tmp_path / "dir.key"
    folder.mkdir()
    assert "cannot read it" in (reason(api_key_file=str(folder)) or "")
    good = key_file(tmp_path / "good", f"\n  {KEY.upper()}  \n\n")
    assert reason(api_key_file=str(good)) is None
    assert reason(api_key_file=str(good), requests_per_minute="0") == \
        "requests_per_minute must be above 0"
    assert reason(api_key_file=str(good), url="ftp://x") == "url 'ftp://x' is not an http(s) URL"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unavailable_with_an_unreadable_key_file(tmp_path: Path) -> None:
    path = key_file(tmp_path)
    path.chmod(0)
    assert reason(api_key_file=str(path)) == f"api_key_file {path}: cannot read it: " \
                                             "Permission denied"


def test_without_a_key_the_module_stays_idle(tmp_path: Path, caplog: Any) -> None:
    with caplog.at_level(logging.WARNING, LOGGER):
        ctx = ModuleTestContext(CLS, {"api_key_file": str(tmp_path / "none")})
    new_ips(ctx, ["203.0.113.1"])
    assert ctx.finish() == [] and ctx.ip_infos == {}
    assert "virustotal lookups are off: api_key_file" in caplog.text


# --- lookups -------------------------------------------------------------------------


def test_each_public_ip_is_looked_up_once_and_scored(tmp_path: Path, vt: VTServer) -> None:
    ctx = context(tmp_path, vt.url)
    public = [f"203.0.113.{i}" for i in range(1, 6)] + ["2001:db8::7"]
    new_ips(ctx, [*public, "192.168.1.5", "10.0.0.1", "224.0.0.251", "203.0.113.1"])
    assert ctx.finish() == []
    assert sorted(vt.paths()) == sorted(f"/ip_addresses/{ip}" for ip in public)
    assert {key for _, _, key in vt.requests} == {KEY}
    assert set(ctx.ip_infos) == set(public)
    info = ctx.ip_infos["203.0.113.3"]["vt"]
    want = scores("203.0.113.3")
    assert {k: info[k] for k in ("malicious", "suspicious", "harmless", "undetected")} == \
        {k: want[k] for k in ("malicious", "suspicious", "harmless", "undetected")}
    assert info["reputation"] == reputation("203.0.113.3")
    assert info["found"] is True and info["as_owner"] == "Example Transit"
    assert info["asn"] == 64500 and info["country"] == "NL" and info["checked_at"] > 0
    assert ctx.backend.cache_get("ip:203.0.113.3") == info  # kept for later runs


def test_requests_are_spaced_by_the_rate_limit(tmp_path: Path, vt: VTServer) -> None:
    ctx = context(tmp_path, vt.url, requests_per_minute=600)  # one every 0.1 s
    new_ips(ctx, [f"198.51.100.{i}" for i in range(1, 13)])
    ctx.finish()
    times = vt.times()
    assert len(times) == 12
    # Ten a second at most: any 0.9 s window (0.1 s of slack for delivery) holds ten.
    # Sent without pacing, all twelve would arrive within a few milliseconds.
    assert most_in_window(times, 0.9) <= 10


def test_unknown_ip_is_cached_as_unknown(tmp_path: Path, vt: VTServer) -> None:
    vt.unknown.add("203.0.113.44")
    ctx = context(tmp_path, vt.url)
    new_ips(ctx, ["203.0.113.44"])
    ctx.finish()
    info = ctx.ip_infos["203.0.113.44"]["vt"]
    assert info["found"] is False and set(info) == {"found", "checked_at"}
    assert ctx.backend.cache_get("ip:203.0.113.44") == info
    assert counts(ctx)["unknown"] == 1


def test_429_waits_as_told_then_retries_the_same_ip(tmp_path: Path, vt: VTServer) -> None:
    vt.script("/ip_addresses/203.0.113.10", [(429, {"Retry-After": "1"})])
    vt.script("/ip_addresses/203.0.113.11", [(429, {}), (429, {})])
    ctx = context(tmp_path, vt.url, backoff=0.3, max_backoff=5)
    new_ips(ctx, ["203.0.113.10"])
    wait_for(lambda: "vt" in ctx.ip_infos.get("203.0.113.10", {}), 10, "the first answer")
    new_ips(ctx, ["203.0.113.11"])
    ctx.finish()
    first = [t for t, path, _ in vt.requests if path.endswith("/203.0.113.10")]
    second = [t for t, path, _ in vt.requests if path.endswith("/203.0.113.11")]
    assert len(first) == 2 and first[1] - first[0] >= 0.95  # Retry-After: 1
    # Without Retry-After: the backoff, doubling (0.3 s, then 0.6 s).
    assert len(second) == 3 and second[1] - second[0] >= 0.29 and second[2] - second[1] >= 0.59
    assert ctx.ip_infos["203.0.113.11"]["vt"]["found"] is True
    assert counts(ctx)["throttled"] == 3


def test_server_errors_are_retried_without_losing_the_ip(tmp_path: Path, vt: VTServer,
                                                         caplog: Any) -> None:
    vt.script("/ip_addresses/203.0.113.20", [(500, {}), (502, {}), (503, {}), (504, {})])
    with caplog.at_level(logging.WARNING, LOGGER):
        ctx = context(tmp_path, vt.url)  # retries = 3: then it is queued again
        new_ips(ctx, ["203.0.113.20"])
        ctx.finish()
    assert vt.paths() == ["/ip_addresses/203.0.113.20"] * 5
    assert ctx.ip_infos["203.0.113.20"]["vt"]["found"] is True
    assert counts(ctx)["failed_requests"] == 4 and counts(ctx)["requeued"] == 1
    assert "HTTP 503: Scripted503 scripted answer), attempt 3 of 3" in caplog.text
    assert "goes back to the end of the queue" in caplog.text


def test_an_ip_failing_too_often_goes_to_the_back_of_the_queue(tmp_path: Path,
                                                               vt: VTServer) -> None:
    vt.script("/ip_addresses/203.0.113.30", [(500, {}), (500, {}), (503, {})])
    ctx = context(tmp_path, vt.url, retries=2)
    new_ips(ctx, ["203.0.113.30", "203.0.113.31"])
    ctx.finish()
    a, b = "/ip_addresses/203.0.113.30", "/ip_addresses/203.0.113.31"
    assert vt.paths() == [a, a, b, a, a]
    assert ctx.ip_infos["203.0.113.30"]["vt"]["found"] is True
    assert counts(ctx)["requeued"] == 1 and counts(ctx)["given_up"] == 0


def test_an_unreachable_service_is_given_up_loudly_at_the_end(tmp_path: Path,
                                                              caplog: Any) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with caplog.at_level(logging.WARNING, LOGGER):
        ctx = context(tmp_path, f"http://127.0.0.1:{port}/api/v3", retries=2, timeout=2)
        new_ips(ctx, ["203.0.113.40", "203.0.113.41"])
        ctx.finish()
    assert ctx.ip_infos == {}
    assert counts(ctx)["given_up"] == 2
    assert "gave up" in caplog.text and "ip 203.0.113.41" in caplog.text
    assert "ConnectionError" in caplog.text


def test_a_refused_key_stops_all_queries(tmp_path: Path, vt: VTServer, caplog: Any) -> None:
    vt.refuse = True
    with caplog.at_level(logging.INFO, LOGGER):
        ctx = context(tmp_path, vt.url)
        new_ips(ctx, [f"203.0.113.{i}" for i in range(50, 55)])
        ctx.finish()
    assert len(vt.requests) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "refused the API key (HTTP 401: WrongCredentialsError" in errors[0]
    assert counts(ctx)["skipped"] == 5


def test_a_stop_request_ends_shutdown_promptly(tmp_path: Path, vt: VTServer,
                                               caplog: Any) -> None:
    with caplog.at_level(logging.INFO, LOGGER):
        ctx = context(tmp_path, vt.url, requests_per_minute=1)  # one a minute
        new_ips(ctx, ["203.0.113.60", "203.0.113.61", "203.0.113.62"])
        wait_for(lambda: "203.0.113.60" in ctx.ip_infos, 10, "the first answer")
        finishing = threading.Thread(target=ctx.finish)
        finishing.start()
        wait_for(lambda: "the run waits for 2 VirusTotal lookups" in caplog.text, 10,
                 "shutdown to wait for the queue")
        assert finishing.is_alive()
        ctx.ctx.stopping.set()
        wait_for(lambda: not finishing.is_alive(), 5, "shutdown to return after the stop")
    assert len(vt.requests) == 1 and counts(ctx)["not_done"] == 2
    assert "stopped with 2 VirusTotal lookups not done" in caplog.text


def test_daily_quota_waits_for_the_next_day_and_persists(tmp_path: Path, vt: VTServer,
                                                         caplog: Any) -> None:
    state = tmp_path / "data" / "pacing.json"
    state.parent.mkdir()
    state.write_text(json.dumps({"day": "2000-01-01", "used": 99, "next": 0}))  # a past day
    with caplog.at_level(logging.WARNING, LOGGER):
        ctx = context(tmp_path, vt.url, daily_quota=2)
        new_ips(ctx, [f"203.0.113.{i}" for i in range(70, 74)])
        wait_for(lambda: "daily quota of 2 requests is used up" in caplog.text, 10, "the quota")
        assert len(vt.requests) == 2
        ctx.ctx.stopping.set()
        ctx.finish()
    assert json.loads(state.read_text())["used"] == 2
    # Another run the same day shares the budget: one more with a quota of 3.
    caplog.clear()
    with caplog.at_level(logging.WARNING, LOGGER):
        again = context(tmp_path, vt.url, daily_quota=3)
        new_ips(again, ["198.51.100.70", "198.51.100.71"])
        wait_for(lambda: "daily quota of 3 requests is used up" in caplog.text, 10, "the quota")
        again.ctx.stopping.set()
        again.finish()
    assert len(vt.requests) == 3 and json.loads(state.read_text())["used"] == 3


def test_domains_go_on_the_addresses_they_were_met_at(tmp_path: Path, vt: VTServer) -> None:
    ctx = context(tmp_path, vt.url)
    base = {"ts": 1_700_000_000.0, "uid": "C1", "saddr": "192.168.1.10", "sport": 50000,
            "dport": 53, "profile": "192.168.1.10", "tw": 0}

    def dns(query: str, answers: list[str]) -> None:
        ctx.feed("new_dns", {**base, "daddr": "192.168.1.1", "query": query, "answers": answers,
                             "qtype_name": "A", "rcode_name": "NOERROR", "TTLs": []})

    dns("Evil.Example.COM.", ["cdn.example.net", "203.0.113.9", "10.0.0.9"])
    ctx.feed("new_ssl", {**base, "daddr": "198.51.100.7", "server_name": "www.example.org"})
    ctx.feed("new_http", {**base, "daddr": "198.51.100.8", "host": "example.net:8080"})
    # Not looked up: local names, reverse lookups, service names, an IP literal, a name
    # without a public address, a private server.
    for query in ("printer.local", "wpad", "4.3.2.1.in-addr.arpa", "_ldap._tcp.dc.example.com"):
        dns(query, ["203.0.113.9"])
    dns("nx.example.com", [])
    ctx.feed("new_http", {**base, "daddr": "198.51.100.8", "host": "203.0.113.50"})
    ctx.feed("new_ssl", {**base, "daddr": "192.168.1.20", "server_name": "intranet.example.com"})
    wait_for(lambda: "vt_domains" in ctx.ip_infos.get("203.0.113.9", {}), 10, "a domain result")
    dns("evil.example.com", ["203.0.113.99"])  # known already: no second request
    ctx.finish()
    assert sorted(vt.paths()) == ["/domains/evil.example.com", "/domains/example.net",
                                  "/domains/www.example.org"]
    for ip, domain in (("203.0.113.9", "evil.example.com"), ("203.0.113.99", "evil.example.com"),
                       ("198.51.100.7", "www.example.org"), ("198.51.100.8", "example.net")):
        found = ctx.ip_infos[ip]["vt_domains"]
        assert list(found) == [domain], ip
        assert found[domain]["malicious"] == scores(domain)["malicious"]
        assert found[domain]["reputation"] == reputation(domain)
    assert "10.0.0.9" not in ctx.ip_infos


def test_domains_off(tmp_path: Path, vt: VTServer) -> None:
    ctx = context(tmp_path, vt.url, domains="no")
    ctx.feed("new_ssl", {"ts": 1.0, "uid": "C1", "saddr": "192.168.1.10", "sport": 1,
                         "daddr": "198.51.100.7", "dport": 443, "profile": "192.168.1.10",
                         "tw": 0, "server_name": "www.example.org"})
    new_ips(ctx, ["198.51.100.7"])
    ctx.finish()
    assert vt.paths() == ["/ip_addresses/198.51.100.7"]


def test_retry_after_header_forms() -> None:
    retry_after = load_helper("_client")._retry_after
    assert retry_after("7") == 7.0 and retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert retry_after("999999") == 86400.0  # beyond a day: not obeyed as such
