"""Edge cases of the dns module, fed directly (no Redis): stream order, the end of the
run, caps, and how repeats are bounded."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from slipsd.evidence import Evidence
from slipsd.module_loader import ModuleRef, load_class
from slipsd.testing import ModuleTestContext, make_flow

from conftest import REPO

CLS = load_class(ModuleRef("dns", path=str(Path(REPO) / "modules" / "dns")))
T = 1_700_000_000.0
HOST = "192.168.1.10"
_uids = itertools.count(1)


def dns(ts: float, query: str, answers: list[str] | None = None, *, qtype: str = "A",
        rcode: str = "NOERROR", saddr: str = HOST, daddr: str = "192.168.1.1",
        dport: int = 53, tw: int = 0) -> dict[str, Any]:
    return {"ts": ts, "uid": f"CDNS{next(_uids):010d}", "saddr": saddr, "daddr": daddr,
            "sport": 40000, "dport": dport, "profile": saddr, "tw": tw, "query": query,
            "qtype_name": qtype, "rcode_name": rcode, "answers": answers or [],
            "TTLs": [60.0] * len(answers or [])}


def flow(ts: float, daddr: str, *, saddr: str = HOST, duration: float = 2.0,
         tw: int = 0) -> dict[str, Any]:
    return make_flow(ts=ts, saddr=saddr, daddr=daddr, duration=duration, tw=tw)


def context(**config: str) -> ModuleTestContext:
    ctx = ModuleTestContext(CLS, config)
    ctx.feed("new_input", {"source": "test", "log_types": ["conn", "dns"]})
    return ctx


def types(found: list[Evidence]) -> list[str]:
    return [e.type for e in found]


def keep_logs_going(ctx: ModuleTestContext, start: float, end: float) -> None:
    """Other traffic of the host, used names and their connections, so that both logs
    (and the host) are seen to go on."""
    ts = start
    while ts <= end:
        ctx.feed("new_dns", dns(ts, "www.example.org", ["198.51.100.200"]))
        ctx.feed("new_flow", flow(ts + 0.1, "198.51.100.200"))
        ts += 120.0


def test_unused_names_are_aggregated_per_window() -> None:
    ctx = context()
    for i in range(12):
        ctx.feed("new_dns", dns(T + i, f"n{i}.example.com", [f"203.0.113.{i + 1}"]))
    keep_logs_going(ctx, T, T + 2500)
    found = [e for e in ctx.evidence if e.type == "DNS_WITHOUT_CONNECTION"]
    # Judged when the conn log passed query + 1800 s + Zeek's 300 s logging delay.
    assert [e.id for e in found] == [e.id for e in ctx.evidence]
    assert len(found) == 2, [e.description for e in found]
    first, tenth = found
    assert (first.threat_level, first.confidence, first.victim) == ("low", 0.2, "")
    assert "n0.example.com" in first.description and "203.0.113.1" in first.description
    assert (tenth.threat_level, tenth.confidence) == ("low", 0.5)
    assert "10 internet names" in tenth.description and "n4.example.com" in tenth.description
    assert len(tenth.uids) == 10
    assert ctx.finish() == []


def test_same_events_same_evidence_ids() -> None:
    def run() -> list[str]:
        ctx = context(nxdomain_threshold="3")
        for i in range(5):
            ctx.feed("new_dns", dns(T + i, f"q{i}x.example.net", rcode="NXDOMAIN"))
            ctx.feed("new_dns", dns(T + i, f"u{i}.example.net", ["203.0.113.9"]))
        keep_logs_going(ctx, T, T + 2400)
        ctx.finish()
        return [e.id for e in ctx.evidence]

    first = run()
    assert len(first) == 2 and first == run()


def test_connection_earlier_in_the_stream_counts() -> None:
    # One batch of conn records delivered before the batch of dns records they follow.
    ctx = context()
    keep_logs_going(ctx, T, T + 2500)
    ctx.feed("new_flow", flow(T + 10.5, "203.0.113.50"))
    ctx.feed("new_flow", flow(T + 700, "2001:db8::51"))
    ctx.feed("new_dns", dns(T + 10, "early.example.com", ["cdn.example.net", "203.0.113.50"]))
    ctx.feed("new_dns", dns(T + 20, "v6.example.com", ["2001:db8::51"], qtype="AAAA"))
    ctx.feed("new_dns", dns(T + 30, "never.example.com", ["203.0.113.52"]))
    ctx.finish()
    found = [e for e in ctx.evidence if e.type == "DNS_WITHOUT_CONNECTION"]
    assert len(found) == 1 and "never.example.com" in found[0].description


def test_connection_later_in_the_stream_counts() -> None:
    ctx = context()
    ctx.feed("new_dns", dns(T + 10, "late.example.com", ["203.0.113.60"]))
    ctx.feed("new_dns", dns(T + 11, "late.example.com", ["2001:db8::60"], qtype="AAAA"))
    keep_logs_going(ctx, T, T + 1700)
    # A connection 25 minutes after the query, to the AAAA answer only.
    ctx.feed("new_flow", flow(T + 1510, "2001:db8::60"))
    keep_logs_going(ctx, T + 1800, T + 3000)
    assert ctx.finish() == [] and ctx.evidence == []


def test_young_queries_are_not_judged_at_the_end() -> None:
    ctx = context()
    keep_logs_going(ctx, T, T + 1000)
    ctx.feed("new_dns", dns(T + 100, "young.example.com", ["203.0.113.70"]))
    # The conn log ends 900 s after the query: too soon to tell.
    assert ctx.finish() == []
    assert len(ctx.module.tracker.pending) == 1


def test_old_queries_are_judged_at_the_end() -> None:
    ctx = context()
    ctx.feed("new_dns", dns(T + 100, "old.example.com", ["203.0.113.71"]))
    keep_logs_going(ctx, T, T + 2000)
    # Within Zeek's logging delay of the conn log's end: only the end of the run decides.
    assert ctx.evidence == []
    found = ctx.finish()
    assert types(found) == ["DNS_WITHOUT_CONNECTION"] and "old.example.com" in found[0].description


def test_no_verdict_without_conn_records() -> None:
    ctx = ModuleTestContext(CLS, {})
    ctx.feed("new_input", {"source": "argus", "log_types": ["dns"]})
    ctx.feed("new_dns", dns(T, "x.example.com", ["203.0.113.80"]))
    ctx.feed("new_flow", flow(T + 5000, "198.51.100.200"))
    assert ctx.finish() == [] and ctx.evidence == []
    assert len(ctx.module.tracker.pending) == 0


def test_resolvers_and_hosts_without_connections_are_not_judged() -> None:
    ctx = context()
    # 192.168.1.1 answers HOST, then asks upstream itself: a resolver.
    ctx.feed("new_dns", dns(T, "a.example.com", ["203.0.113.90"]))
    ctx.feed("new_dns", dns(T + 0.01, "a.example.com", ["203.0.113.90"], saddr="192.168.1.1",
                            daddr="198.51.100.53"))
    # 192.168.1.20 is seen only through its DNS queries.
    ctx.feed("new_dns", dns(T + 1, "b.example.com", ["203.0.113.91"], saddr="192.168.1.20"))
    keep_logs_going(ctx, T, T + 3000)
    ctx.finish()
    assert [e.attacker for e in ctx.evidence] == [HOST]


def test_a_name_already_used_is_not_judged_again() -> None:
    ctx = context()
    ctx.feed("new_dns", dns(T, "mail.example.com", ["203.0.113.95"]))
    ctx.feed("new_flow", flow(T + 1, "203.0.113.95"))
    # Resolved again two hours later while the first connection's answer is still used.
    ctx.feed("new_dns", dns(T + 7200, "mail.example.com", ["203.0.113.96"], tw=2))
    keep_logs_going(ctx, T, T + 10000)
    assert ctx.finish() == [] and ctx.evidence == []


def test_pending_names_are_capped_per_host() -> None:
    ctx = context(pending_per_host="10")
    for i in range(50):
        ctx.feed("new_dns", dns(T + i, f"c{i}.example.com", ["203.0.113.99"]))
    tracker = ctx.module.tracker
    assert len(tracker.pending) == 10 and tracker.pending.refused == 40
    keep_logs_going(ctx, T, T + 2500)
    assert len(tracker.pending) == 0
    # The ten held were judged: one evidence at the first name and one at ten.
    assert len(ctx.evidence) == 2


def test_state_is_dropped_when_windows_close() -> None:
    ctx = context()
    for i in range(30):
        ctx.feed("new_dns", dns(T + i, f"{i}.{i}.0.10.in-addr.arpa", qtype="PTR"))
        ctx.feed("new_flow", flow(T + i, f"198.51.100.{i + 1}"))
    module = ctx.module
    assert module.windows and module.tracker.contacts.spans
    ctx.feed("new_dns", dns(T + 8000, "z.example.com", ["203.0.113.1"], tw=2))
    ctx.close_window(HOST, 0, start=T)
    ctx.close_window(HOST, 1, start=T + 3600)
    assert (HOST, 0) not in module.windows
    # Connections of window 0 cannot match a query from 8000 s on (wait 1800 s).
    assert "198.51.100.1" not in module.tracker.contacts.spans.get(HOST, {})


def test_dga_levels() -> None:
    ctx = context()
    for i in range(120):
        ctx.feed("new_dns", dns(T + i, f"k{i:03d}zqvx.example.org", rcode="NXDOMAIN"))
        ctx.feed("new_dns", dns(T + i, f"k{i:03d}zqvx.example.org", rcode="NXDOMAIN"))
    found = ctx.evidence
    assert [(e.type, e.threat_level, e.confidence) for e in found] == [
        ("DGA_NXDOMAINS", "medium", 0.6), ("DGA_NXDOMAINS", "high", 0.8)]
    assert "100 distinct names" in found[1].description
    # A new window starts counting again.
    more = [ctx.feed("new_dns", dns(T + 3600 + i, f"w{i}q.example.org", rcode="NXDOMAIN", tw=1))
            for i in range(10)]
    assert [len(m) for m in more] == [0] * 9 + [1]


def test_arpa_scan_levels_and_burst() -> None:
    ctx = context()
    # Slow lookups first: 150 names at 0.5 s intervals never make 10 within 2 s...
    for i in range(150):
        ctx.feed("new_dns", dns(T + i * 0.5, f"{i % 250}.{i // 250}.51.198.in-addr.arpa",
                                qtype="PTR"))
    assert ctx.evidence == []
    # ...then a burst: the scan, and the window already past 100 names.
    for i in range(10):
        ctx.feed("new_dns", dns(T + 100 + i * 0.1, f"{i}.9.113.203.in-addr.arpa", qtype="PTR"))
    assert [(e.type, e.confidence, e.threat_level) for e in ctx.evidence] == [
        ("DNS_ARPA_SCAN", 0.5, "medium"), ("DNS_ARPA_SCAN", 0.8, "medium")]
    assert "10 reverse DNS lookups within 2 s" in ctx.evidence[0].description
    assert "100 reverse DNS lookups in this window" in ctx.evidence[1].description


def test_reverse_lookups_over_mdns_are_ignored() -> None:
    ctx = context()
    for i in range(20):
        ctx.feed("new_dns", dns(T + i * 0.05, f"{i}.1.168.192.in-addr.arpa", qtype="PTR",
                                daddr="224.0.0.251", dport=5353))
    assert ctx.evidence == []


def test_txt_and_private_answers_are_bounded() -> None:
    ctx = context()
    data = "TXT 64 " + "".join(chr(c) for c in range(ord("0"), ord("0") + 64))
    for i in range(12):
        ctx.feed("new_dns", dns(T + i, f"s{i}.t.example.net", [data], qtype="TXT"))
        ctx.feed("new_dns", dns(T + i, f"h{i}.example.net", ["10.9.8.7"]))
    txt = [e for e in ctx.evidence if e.type == "HIGH_ENTROPY_DNS_TXT"]
    private = [e for e in ctx.evidence if e.type == "PRIVATE_IP_DNS_ANSWER"]
    assert len(txt) == 6 and len(private) == 6
    assert "6.00 bits" in txt[0].description
    assert (txt[-1].threat_level, private[-1].threat_level) == ("medium", "low")
    assert "10 names with high-entropy TXT answers" in txt[-1].description


def test_a_closed_window_stands_for_a_quiet_dns_log() -> None:
    ctx = context()
    ctx.feed("new_dns", dns(T + 100, "quiet.example.com", ["203.0.113.40"]))
    for i in range(40):  # connections go on, DNS goes quiet
        ctx.feed("new_flow", flow(T + 200 + i * 100, "198.51.100.200"))
    assert ctx.evidence == []  # later answers for the name could still come
    found = ctx.close_window(HOST, 0, start=T)  # they cannot: every record before T+3600 is in
    assert types(found) == ["DNS_WITHOUT_CONNECTION"]
