"""Retention of the live run in Redis: old windows go, with their profiles, addresses,
evidence and alerts; recent ones stay; the output files keep everything.

The store side runs on a layout written through the real Store methods (as the
profiler and the evidence handler write it); the daemon side on a live run fed
through the stand-in sensor's conn.log, its traffic time crossing many windows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slipsd.retention import SWEEP_SECONDS, SWEEP_SECONDS_ENV, sweep_seconds
from slipsd.store import IpInfo, LiveRetention, RedisClient, Store
from slipsd.store._store import WindowDelta

from conftest import Daemon, wait_for
from test_live import live_conf, scan_lines

RUN = "live-retention"
T0, WIDTH = 1000.0, 100.0
A, B, C, D = "10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"


def traffic(store: Store, windows: dict[tuple[str, int], list[str]],
            profiles: dict[str, tuple[float, float]], new_ips: list[str]) -> None:
    """One profiler write: each (profile, window) gets one flow per destination."""
    deltas = {key: WindowDelta(flows=len(dsts), dst_ips=dict.fromkeys(dsts, 1),
                               dst_ports={("tcp", 443, "SF"): len(dsts)})
              for key, dsts in windows.items()}
    rows = {ip: (first, last, 1) for ip, (first, last) in profiles.items()}
    store.write_traffic(new_ips, rows, deltas, {})


def at(tw: int) -> float:
    return T0 + tw * WIDTH + 10


def evidence(ident: str, profile: str, tw: int) -> dict[str, Any]:
    return {"id": ident, "type": "HORIZONTAL_PORT_SCAN", "attacker": profile, "victim": "",
            "threat_level": "high", "confidence": 1.0, "description": "x", "ts": at(tw),
            "tw": tw, "profile": profile, "module": "scans", "uids": []}


def alert(ident: str, profile: str, tw: int, score: float) -> dict[str, Any]:
    return {"id": ident, "profile": profile, "tw": tw, "ts": at(tw), "score": score,
            "threshold": 1.0, "evidence": []}


def layout(client: RedisClient) -> Store:
    """A live run at window 7: A active in 0-2 and 5-6, B only in 7 (the open window),
    C only in 0-1, D's window 2 stored but its last record (in window 6) not yet."""
    store = Store(client, RUN)
    store.set_run_meta(first_ts=T0, width=WIDTH)
    traffic(store, {(A, 0): ["1.1.1.1"], (A, 1): ["1.1.1.1"], (A, 2): ["8.8.8.8"],
                    (C, 0): ["9.9.9.9"], (C, 1): ["8.8.8.8"], (D, 2): ["8.8.8.8"]},
            {A: (at(0), at(2)), C: (at(0), at(1)), D: (at(2), at(2))},
            [A, C, D, "1.1.1.1", "8.8.8.8", "9.9.9.9", "10.0.0.53"])
    traffic(store, {(A, 5): ["8.8.8.8"], (A, 6): ["8.8.8.8"], (B, 7): ["4.4.4.4"]},
            {A: (at(0), at(6)), B: (at(7), at(7)), D: (at(2), at(6))}, [B, "4.4.4.4"])
    IpInfo(client, RUN).update({"1.1.1.1": {"country": "AU"}, "8.8.8.8": {"country": "US"},
                                C: {"mac": "02:00:00:00:00:03"}, "4.4.4.4": {"asn": 3356},
                                "example.org": {"vt": {"score": 0}}})
    for ident, profile, tw in (("e-c1", C, 1), ("e-a5", A, 5), ("e-b7", B, 7)):
        store.add_evidence(evidence(ident, profile, tw))
    for ident, profile, tw, score in (("a-a1", A, 1, 3.0), ("a-c0", C, 0, 2.0),
                                      ("a-a5", A, 5, 1.5), ("a-b7", B, 7, 1.2)):
        store.append_alert(alert(ident, profile, tw, score))
    return store


def window_keys(client: RedisClient) -> set[str]:
    prefix = f"slips:{{{RUN}}}:tw:"
    return {k[len(prefix):] for k in client.scan_iter(match=prefix + "*")}


def info_keys(client: RedisClient) -> set[str]:
    prefix = f"slips:{{{RUN}}}:ipinfo:"
    return {k[len(prefix):] for k in client.scan_iter(match=prefix + "*")}


def test_a_sweep_removes_old_windows_and_what_only_they_explain(
        redis_client: RedisClient) -> None:
    store = layout(redis_client)
    retention = LiveRetention(redis_client, RUN)
    result = retention.sweep(keep=2)
    assert (result.newest, result.cutoff) == (7, 5)
    # A: windows 0-2; C: 0-1 and the profile; D: window 2 (its profile stays: last seen in 6)
    assert (result.windows, result.profiles) == (6, 1)
    assert store.profiles() == [A, B, D]
    assert (store.windows(A), store.windows(B), store.windows(D)) == ([5, 6], [7], [])
    assert store.profile(C) == {} and store.profile(D)["last_seen"] == repr(at(6))
    assert window_keys(redis_client) == {f"{ip}:{tw}{part}" for ip, tw in ((A, 5), (A, 6), (B, 7))
                                         for part in ("", ":dst", ":ports")}
    # Addresses seen only in deleted windows go; a destination of a kept window stays,
    # and so do those noticed now (a DNS server seen outside flows, ip info of a name).
    assert result.addresses == 3
    assert store.ips() == {A, B, D, "8.8.8.8", "4.4.4.4", "10.0.0.53"}
    assert info_keys(redis_client) == {"8.8.8.8", "4.4.4.4", "example.org"}
    assert (result.evidence, result.alerts) == (1, 2)
    assert sorted(e["id"] for e in store.all_evidence()) == ["e-a5", "e-b7"]
    assert [a["id"] for a in store.alerts()] == ["a-a5", "a-b7"]
    scores = dict(redis_client.zrange(store.key("scores"), 0, -1, withscores=True))
    assert scores == {A: 1.5, B: 1.2}  # A's highest was 3.0, of a deleted window
    assert result.removed == {"expired.windows": 6, "expired.profiles": 1,
                              "expired.addresses": 3, "expired.evidence": 1,
                              "expired.alerts": 2}
    again = retention.sweep(keep=2)
    assert not any(again.removed.values())


def test_late_writes_and_later_windows(redis_client: RedisClient) -> None:
    store = layout(redis_client)
    retention = LiveRetention(redis_client, RUN)
    retention.sweep(keep=2)
    # A late record for A's window 1 (a window already deleted) comes back: it goes again
    # at the next sweep, though no window closed.
    traffic(store, {(A, 1): ["1.1.1.1"]}, {A: (at(0), at(6))}, [])
    late = retention.sweep(keep=2)
    assert (late.newest, late.windows, late.profiles) == (7, 1, 0)
    assert store.windows(A) == [5, 6] and window_keys(redis_client) >= {f"{A}:5"}
    # Traffic moves on to window 10: A and D age out, B's window 7 goes, so does 8.8.8.8.
    traffic(store, {(B, 10): ["4.4.4.4"]}, {B: (at(7), at(10))}, [])
    later = retention.sweep(keep=2)
    assert (later.newest, later.cutoff) == (10, 8)
    assert store.profiles() == [B] and store.windows(B) == [10]
    assert store.ips() == {B, "4.4.4.4"}
    assert info_keys(redis_client) == {"4.4.4.4"}
    assert store.all_evidence() == [] and store.alerts() == []
    assert redis_client.zcard(store.key("scores")) == 0


def test_an_address_dated_again_after_the_sweep_listed_it_stays(
        redis_client: RedisClient) -> None:
    store = layout(redis_client)
    retention = LiveRetention(redis_client, RUN)
    retention.sweep(keep=10)  # deletes nothing yet, but builds the index
    assert redis_client.zscore(retention.seen, "9.9.9.9") == 0  # C's destination
    assert redis_client.zscore(retention.seen, "1.1.1.1") == 1  # A's
    # A sweep with cutoff 5 lists both as stale; meanwhile the ingest announces 9.9.9.9
    # again in window 7 and dates it there, in the same script as `ips`.
    stale = ["9.9.9.9", "1.1.1.1"]
    store.write_traffic(["9.9.9.9"], {}, {}, {}, {"9.9.9.9": 7})
    assert redis_client.zscore(retention.seen, "9.9.9.9") == 7
    store.write_traffic(["9.9.9.9"], {}, {}, {}, {"9.9.9.9": 6})  # never lowered
    assert redis_client.zscore(retention.seen, "9.9.9.9") == 7
    assert retention.drop_addresses(stale, cutoff=5) == 1
    assert "9.9.9.9" in store.ips() and "1.1.1.1" not in store.ips()


def test_a_run_without_traffic_has_nothing_to_sweep(redis_client: RedisClient) -> None:
    result = LiveRetention(redis_client, RUN).sweep(keep=1)
    assert result.newest == -1 and not any(result.removed.values())


def test_sweep_period_from_the_environment() -> None:
    assert sweep_seconds({}) == SWEEP_SECONDS
    assert sweep_seconds({SWEEP_SECONDS_ENV: "0.5"}) == 0.5
    assert sweep_seconds({SWEEP_SECONDS_ENV: "soon"}) == SWEEP_SECONDS


def flows(src: str, start: float, count: int, step: float) -> str:
    return "".join(json.dumps({
        "ts": start + i * step, "uid": f"CRET{src}{i:07d}", "id.orig_h": src,
        "id.orig_p": 40000 + i % 20000, "id.resp_h": f"198.51.100.{i % 50 + 1}",
        "id.resp_p": 443, "proto": "tcp", "service": "ssl", "duration": 1.0,
        "orig_bytes": 500, "resp_bytes": 4000, "conn_state": "SF", "history": "ShADadFf",
        "orig_pkts": 5, "resp_pkts": 6,
    }) + "\n" for i in range(count))


def short_window_live(make_daemon: Any) -> tuple[Daemon, dict[str, Any], Path]:
    """A live daemon with 60 s windows, keep_windows = 2 and a sweep every 0.2 s: its
    live run and the stand-in sensor's conn.log, which the test appends to."""
    daemon: Daemon = make_daemon(
        live_conf("[database]\nkeep_windows = 2\n").replace("time_window_width = 3600",
                                                           "time_window_width = 60"),
        env={"ZEEK_STANDIN_LINES": "0", SWEEP_SECONDS_ENV: "0.2"})
    live = daemon.call("status")["runs"][0]
    conn_log = daemon.root / "state" / "sensors" / "standin0" / "conn.log"
    wait_for(conn_log.exists, 30, "the stand-in's conn.log")
    return daemon, live, conn_log


def test_a_live_run_keeps_only_its_recent_windows_in_redis(make_daemon: Any) -> None:
    start = 1_700_000_000.0
    daemon, live, conn_log = short_window_live(make_daemon)
    # Window 0: a scan (evidence, an alert) and a host that is never seen again; then
    # a host that stays busy for 20 windows (one flow every 6 s).
    with open(conn_log, "a") as out:
        out.write(flows("10.0.0.7", start, 5, 1.0))
        out.write(scan_lines("192.168.7.66", start + 10, 150))
        out.write(flows("10.0.0.9", start + 30, 200, 6.0))
    store, redis = Store(daemon.redis(), live["id"]), daemon.redis()
    wait_for(lambda: store.stats().get("events.new_flow", 0) == 355, 60, "the 355 flows")
    wait_for(lambda: store.stats().get("expired.profiles", 0) >= 2, 60,
             "the idle profiles to expire")
    newest = (start + 30 + 199 * 6.0 - start) // 60  # window 20
    wait_for(lambda: store.windows("10.0.0.9") == [newest - 2, newest - 1, newest], 60,
             "only the recent windows of the busy host")
    assert store.profiles() == ["10.0.0.9"]
    stale = [k for k in redis.scan_iter(match=store.key("tw", "*"))
             if int(k.split(":")[4]) < newest - 2]
    assert stale == []
    wait_for(lambda: not [e for e in store.all_evidence() if e["tw"] < newest - 2]
             and not [a for a in store.alerts() if a["tw"] < newest - 2], 60,
             "the old windows' evidence and alerts to go")
    assert "192.168.7.66" not in store.ips()
    stats = store.stats()
    assert stats["expired.windows"] >= 18 and stats["expired.evidence"] >= 1
    assert stats["expired.alerts"] >= 1
    # The output files keep it all.
    alerts_log = (Path(live["output"]) / "alerts.log").read_text()
    assert " ALERT 192.168.7.66 " in alerts_log and "HORIZONTAL_PORT_SCAN" in alerts_log
    assert "retention sweep failed" not in daemon.log_text()
