"""A live ingest forgets the addresses and profiles that retention deletes from Redis.

The profiler runs as the live ingest runs it (records, the idle flush) and the daemon's
retention sweep after it, on a real redis-server, so what comes back is checked against
what Redis really holds. Analyses forget nothing. The last test runs a live daemon.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from test_profiler import flow
from test_retention import short_window_live

from slipsd import run_specs
from slipsd.config import load
from slipsd.events import NEW_FLOW, NEW_IP, TRAFFIC_CHANNELS
from slipsd.ingest import IngestSpec, run_ingest
from slipsd.profiler import Profiler
from slipsd.store import (
    Consumer,
    LiveRetention,
    Producer,
    RedisClient,
    Store,
    SweepResult,
    resume_state,
)

from conftest import wait_for

T0, WIDTH, KEEP = 1000.0, 100.0, 2
H, Q = "10.0.0.1", "10.0.0.2"  # a busy host, a quiet one
S, D, E, T = "1.1.1.1", "9.9.9.9", "8.8.8.8", "10.0.0.99"  # servers, an ARP target

Record = tuple[str, dict[str, Any]]


def at(tw: int, offset: float = 0.0) -> float:
    """A time in window ``tw``: windows count from T0, the first record's time."""
    return T0 + tw * WIDTH + offset


def conn(tw: int, src: str, dst: str, offset: float = 0.0) -> Record:
    return NEW_FLOW, flow(at(tw, offset), src, dst)


def arp(tw: int, src: str, dst: str, offset: float = 0.0) -> Record:
    return "new_arp", {"ts": at(tw, offset), "uid": "", "saddr": src, "daddr": dst,
                       "operation": "request"}


class LiveIngest:
    """A live run's profiler and its retention sweep, taking turns as in slipsd."""

    def __init__(self, client: RedisClient, run: str, keep: int | None = KEEP,
                 resume: bool = False) -> None:
        self.store = Store(client, run)
        self.producer = Producer(client, run, TRAFFIC_CHANNELS, max_lag=10**6, compress=False)
        self.profiler = Profiler(self.store, self.producer, width=WIDTH, batch_size=3,
                                 keep_windows=keep or 0)
        if resume:
            self.profiler.resume(float(self.store.run_meta()["first_ts"]),
                                 *resume_state(self.store))
        self.retention = LiveRetention(client, run)
        self.keep = keep

    def feed(self, *records: Record) -> None:
        """Records, then the idle flush that writes them."""
        for channel, event in records:
            self.profiler.feed(event["ts"], channel, event)
        self.profiler.flush()

    def sweep(self) -> SweepResult:
        assert self.keep is not None, "analyses have no sweep"
        return self.retention.sweep(self.keep)

    def step(self, *records: Record) -> None:
        self.feed(*records)
        if self.keep is not None:
            self.sweep()

    def ips(self) -> set[str]:
        return self.store.ips()

    def profile(self, ip: str) -> tuple[float, float, int] | None:
        raw = self.store.profile(ip)
        return (float(raw["first_seen"]), float(raw["last_seen"]), int(raw["flows"])) \
            if raw else None


def announced(client: RedisClient, run: str) -> list[tuple[str, int]]:
    """(address, window) of every new_ip of the run; ends the run's streams."""
    Producer(client, run, TRAFFIC_CHANNELS).close()
    consumer = Consumer(client, run, "check", list(TRAFFIC_CHANNELS), count=1000)
    consumer.start()
    out: list[tuple[str, int]] = []
    while not consumer.done:
        entries = consumer.read(200)
        out += [(ev["ip"], int((ev["ts"] - T0) // WIDTH)) for e in entries
                if e.channel == NEW_IP for ev in e.events]
        consumer.ack(entries)
    return out


def test_a_quiet_address_is_forgotten_and_new_again_when_it_returns(
        redis_client: RedisClient) -> None:
    live = LiveIngest(redis_client, "forget-1")
    live.step(conn(0, H, S), conn(0, Q, D, 20))
    for tw in range(1, 5):  # H stays busy with S; Q and D (only ever a destination) are quiet
        live.step(conn(tw, H, S))
        assert {H, S} <= live.ips()
        # Held while window 0 is kept (keep = 2 windows before the newest).
        assert ({Q, D} <= live.ips()) == (tw < 3) and (live.profile(Q) is not None) == (tw < 3)
    live.step(conn(5, Q, D, 30), conn(5, Q, D, 40))
    assert {H, S, Q, D} <= live.ips()
    assert live.profile(Q) == (at(5, 30), at(5, 40), 2)  # afresh: not 3 flows since window 0
    assert live.store.windows(Q) == [5]
    assert live.profile(H) == (at(0), at(4), 5)
    assert live.store.stats()["forgotten.ips"] == 2
    assert live.store.stats()["forgotten.profiles"] == 1
    assert announced(redis_client, "forget-1") == [(H, 0), (S, 0), (Q, 0), (D, 0), (Q, 5), (D, 5)]


def test_what_redis_still_holds_is_not_forgotten(redis_client: RedisClient) -> None:
    live = LiveIngest(redis_client, "forget-2")
    live.step(conn(0, H, S), conn(0, Q, D, 20))
    live.step(conn(1, H, S))
    live.step(conn(2, H, S), conn(2, Q, D, 20))  # window 0 + keep: still in Redis
    live.step(conn(3, H, S))
    live.step(conn(4, H, S), conn(4, Q, D, 20))  # again, after keep quiet windows
    assert live.store.profiles() == [H, Q] and live.store.windows(Q) == [2, 4]
    assert live.profile(Q) == (at(0, 20), at(4, 20), 3)  # never restarted while held
    live.step(conn(7, Q, D, 20))  # quiet for keep + 1 windows: gone from Redis, new here
    assert live.profile(Q) == (at(7, 20), at(7, 20), 1) and live.store.windows(Q) == [7]
    assert announced(redis_client, "forget-2") == [(H, 0), (S, 0), (Q, 0), (D, 0), (Q, 7), (D, 7)]


def test_a_return_before_the_sweep_restarts_the_profile_too(redis_client: RedisClient) -> None:
    live = LiveIngest(redis_client, "forget-3")
    live.step(conn(0, H, S), conn(0, Q, D, 20))
    live.step(conn(1, H, S))
    live.step(conn(2, H, S))
    # Window 3 expires window 0; Q and D come back before the sweep has deleted it.
    live.feed(conn(3, H, S), conn(3, Q, D, 20))
    assert live.profile(Q) == (at(3, 20), at(3, 20), 1)
    assert live.store.windows(Q) == [0, 3]
    result = live.sweep()
    assert result.cutoff == 1 and result.profiles == 0  # Q stays, with its fresh counters
    assert live.profile(Q) == (at(3, 20), at(3, 20), 1) and live.store.windows(Q) == [3]
    assert {Q, D} <= live.ips()
    # Back in the window they were forgotten in, they count from the next one: the
    # sweep that drops them runs about then, and may not have read their return.
    live.step(conn(4, Q, D, 20))
    live.step(conn(5, Q, D, 20))
    assert live.profile(Q) == (at(3, 20), at(5, 20), 3)
    assert [tw for ip, tw in announced(redis_client, "forget-3") if ip == D] == [0, 3, 4]


def test_an_address_seen_only_outside_flows_is_announced_in_each_window(
        redis_client: RedisClient) -> None:
    live = LiveIngest(redis_client, "forget-4")
    held = []
    for tw in range(8):  # T is asked for by ARP in every window, never in a flow
        live.step(conn(tw, H, S), arp(tw, H, T, 30), arp(tw, H, T, 40))
        held.append(T in live.ips())
    # Redis always holds T: each announcement dates it in the sweep's index (before, the
    # sweep dated it from when it first noticed it, and dropped it at window 4 although
    # it was busy, just after T was written again). The ingest, which only saw T pass,
    # forgets it at each window's end and announces it again.
    assert held == [True] * 8
    assert live.retention.redis.zscore(live.retention.seen, T) == 7
    assert [tw for ip, tw in announced(redis_client, "forget-4") if ip == T] == list(range(8))


def test_late_records_do_not_keep_an_address(redis_client: RedisClient) -> None:
    live = LiveIngest(redis_client, "forget-5")
    live.step(conn(0, H, S), conn(0, H, E, 10))
    live.step(conn(1, H, S))
    live.step(conn(2, H, S))
    # A late flow of window 1 to E, after window 3 has expired window 0 (and E): the
    # sweep has read window 1 already and never counts it.
    live.step(conn(3, H, S), conn(1, H, E, 50))
    live.step(conn(4, H, S), conn(4, H, E))
    assert E in live.ips()
    assert [tw for ip, tw in announced(redis_client, "forget-5") if ip == E] == [0, 1, 4]
    assert live.profiler.counts.late == 1


def test_a_restarted_ingest_goes_on_from_what_redis_holds(redis_client: RedisClient) -> None:
    first = LiveIngest(redis_client, "forget-6")
    first.step(conn(0, H, S), conn(0, Q, D, 20))
    first.step(conn(1, H, S), conn(1, H, E, 20))
    first.step(conn(2, H, S))
    first.feed(conn(2, H, T, 50))  # after the sweep's last look: T is not dated yet
    marks, profiles = resume_state(first.store)
    assert marks == {H: 2, S: 2, Q: 0, D: 0, E: 1, T: 2}  # T: the newest date there is
    assert profiles[H] == (at(0), at(2, 50), 5) and profiles[Q] == (at(0, 20), at(0, 20), 1)
    # The process is replaced (a crash, a reload): the new one resumes from Redis.
    again = LiveIngest(redis_client, "forget-6", resume=True)
    again.step(conn(3, H, S), conn(3, H, E), conn(3, Q, D, 20))
    assert again.profile(H) == (at(0), at(3), 7)  # its counters go on, not from zero
    assert again.profile(Q) == (at(3, 20), at(3, 20), 1)  # expired at window 3
    new_ips = announced(redis_client, "forget-6")
    assert new_ips[-2:] == [(Q, 3), (D, 3)]  # H, S and E (seen in window 1) are not new
    assert again.store.stats()["forgotten.profiles"] == 1


def test_analyses_forget_nothing(redis_client: RedisClient) -> None:
    analysis = LiveIngest(redis_client, "forget-7", keep=None)
    analysis.step(conn(0, H, S), conn(0, Q, D, 20), arp(0, H, T))
    for tw in range(1, 6):
        analysis.step(conn(tw, H, S), arp(tw, H, T))
    analysis.step(conn(6, Q, D, 20))
    assert analysis.profile(Q) == (at(0, 20), at(6, 20), 2)
    assert not [k for k in analysis.store.stats() if k.startswith("forgotten.")]
    assert sorted(announced(redis_client, "forget-7")) == sorted(
        (ip, 0) for ip in (H, S, Q, D, T))  # each once, ever


def zeek_conn(ts: float, src: str, dst: str) -> str:
    return json.dumps({"ts": ts, "uid": f"C{ts}", "id.orig_h": src, "id.orig_p": 40000,
                       "id.resp_h": dst, "id.resp_p": 443, "proto": "tcp",
                       "conn_state": "SF", "history": "ShADadFf", "orig_pkts": 5,
                       "resp_pkts": 6, "orig_bytes": 500, "resp_bytes": 4000}) + "\n"


def test_an_analysis_ignores_keep_windows_in_its_spec(redis_url: str, redis_client: RedisClient,
                                                     tmp_path: Path) -> None:
    logs = tmp_path / "zeek"
    logs.mkdir()
    flows = [(at(tw), H, S) for tw in range(6)] + [(at(0, 20), Q, D), (at(6, 20), Q, D)]
    (logs / "conn.log").write_text("".join(zeek_conn(*f) for f in sorted(flows)))
    assert run_ingest(IngestSpec(run_id="forget-8", redis_url=redis_url, source_name="zeek",
                                 source_path=str(logs), width=WIDTH, keep_windows=KEEP)) == 0
    store = Store(redis_client, "forget-8")
    assert store.profile(Q)["flows"] == "2" and store.profile(Q)["first_seen"] == repr(at(0, 20))
    assert not [k for k in store.stats() if k.startswith("forgotten.")]


def test_keep_windows_reaches_the_ingest_spec(tmp_path: Path) -> None:
    (tmp_path / "slips.conf").write_text("[database]\nkeep_windows = 5\n")
    spec = run_specs.ingest(load(tmp_path / "slips.conf"), "live-x", "unix:///x", [])
    assert spec["keep_windows"] == 5
    assert IngestSpec(**spec, source_name="live").keep_windows == 5


def test_a_live_run_starts_a_returning_profile_afresh(make_daemon: Any) -> None:
    start = 1_700_000_000.0
    daemon, live, conn_log = short_window_live(make_daemon)
    with open(conn_log, "a") as out:  # Q in window 0, then H busy for 10 windows
        out.write(zeek_conn(start, Q, D) + zeek_conn(start + 1, Q, D))
        out.write("".join(zeek_conn(start + 5 + 30 * i, H, S) for i in range(20)))
    store = Store(daemon.redis(), live["id"])
    wait_for(lambda: store.stats().get("expired.profiles", 0) >= 1, 60, "Q's profile to expire")
    assert store.profile(Q) == {} and D not in store.ips()
    back = start + 5 + 30 * 20
    with open(conn_log, "a") as out:
        out.write(zeek_conn(back, Q, D))
    wait_for(lambda: store.profile(Q), 60, "Q back in Redis")
    assert store.profile(Q) == {"first_seen": repr(back), "last_seen": repr(back), "flows": "1"}
    wait_for(lambda: D in store.ips(), 60, "D back in the addresses")
    stats = store.stats()
    assert stats["forgotten.profiles"] >= 1 and stats["forgotten.ips"] >= 2
