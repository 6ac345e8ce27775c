"""The profiler on a real redis-server: profiles, windows, new_ip, tw_closed, direction."""

from __future__ import annotations

from typing import Any

from slipsd.events import NEW_FLOW, NEW_IP, TRAFFIC_CHANNELS, TW_CLOSED
from slipsd.profiler import Profiler
from slipsd.store import Consumer, Producer, RedisClient, Store


def flow(ts: float, saddr: str, daddr: str, **extra: Any) -> dict[str, Any]:
    return {"ts": ts, "uid": f"C{ts}", "saddr": saddr, "daddr": daddr, "sport": 1000,
            "dport": 80, "proto": "tcp", "state": "SF", "sbytes": 10, "dbytes": 20, **extra}


def run_profiler(client: RedisClient, run: str, events: list[tuple[str, dict[str, Any]]],
                 **options: Any) -> list[tuple[str, dict[str, Any]]]:
    consumer = Consumer(client, run, "check", list(TRAFFIC_CHANNELS), count=1000)
    consumer.start()
    producer = Producer(client, run, TRAFFIC_CHANNELS, max_lag=10_000)
    profiler = Profiler(Store(client, run), producer, batch_size=3, **options)
    for channel, event in events:
        profiler.feed(event["ts"], channel, event)
    profiler.finish()
    out: list[tuple[str, dict[str, Any]]] = []
    while not consumer.done:
        entries = consumer.read(200)
        out.extend((e.channel, ev) for e in entries for ev in e.events)
        consumer.ack(entries)
    return out


def test_windows_new_ips_and_closing(redis_client: RedisClient) -> None:
    events = [
        (NEW_FLOW, flow(1000.0, "10.0.0.1", "8.8.8.8")),
        (NEW_FLOW, flow(1500.0, "10.0.0.2", "8.8.8.8")),
        ("new_dns", {"ts": 1600.0, "uid": "D1", "saddr": "10.0.0.1", "daddr": "10.0.0.53",
                     "sport": 5353, "dport": 53, "query": "example.org"}),
        (NEW_FLOW, flow(1000.0 + 100 * 3, "10.0.0.1", "1.1.1.1")),
        (NEW_FLOW, flow(1000.0 + 250, "10.0.0.1", "8.8.8.8")),  # window 2
    ]
    out = run_profiler(redis_client, "p1", events, width=100.0)
    new_ips = [ev["ip"] for ch, ev in out if ch == NEW_IP]
    assert sorted(new_ips) == ["1.1.1.1", "10.0.0.1", "10.0.0.2", "10.0.0.53", "8.8.8.8"]
    flows = [ev for ch, ev in out if ch == NEW_FLOW]
    assert [(f["profile"], f["tw"]) for f in flows] == [
        ("10.0.0.1", 0), ("10.0.0.2", 5), ("10.0.0.1", 3), ("10.0.0.1", 2)]
    closed = [(ev["profile"], ev["tw"]) for ch, ev in out if ch == TW_CLOSED]
    # Windows 2 and 3 only got late flows, after traffic time had passed them: they are
    # closed (again) with the next closing, here the end, after those flows.
    assert set(closed) == {("10.0.0.1", 0), ("10.0.0.2", 5), ("10.0.0.1", 6),
                           ("10.0.0.1", 2), ("10.0.0.1", 3)}
    assert len(closed) == len(set(closed))
    # A window's tw_closed comes after every flow of that window.
    positions = {key: i for i, key in enumerate(
        (ev["profile"], ev["tw"], ch) for ch, ev in out if ch != NEW_IP)}
    assert positions[("10.0.0.1", 0, TW_CLOSED)] > positions[("10.0.0.1", 0, NEW_FLOW)]
    store = Store(redis_client, "p1")
    assert store.profiles() == ["10.0.0.1", "10.0.0.2"]
    assert store.profile("10.0.0.1")["flows"] == "3"
    assert store.windows("10.0.0.1") == [0, 2, 3, 6]
    assert store.window("10.0.0.1", 0)["dst_ports"] == {"tcp/80/SF": 1}
    assert store.stats()["events.new_dns"] == 1


def test_late_events_are_counted_in_their_window(redis_client: RedisClient) -> None:
    events = [(NEW_FLOW, flow(0.0, "10.0.0.1", "8.8.8.8")),
              (NEW_FLOW, flow(500.0, "10.0.0.1", "8.8.8.8")),
              (NEW_FLOW, flow(50.0, "10.0.0.1", "8.8.4.4"))]  # window 0 already closed
    out = run_profiler(redis_client, "p2", events, width=100.0)
    assert [ev["tw"] for ch, ev in out if ch == NEW_FLOW] == [0, 5, 0]
    assert Store(redis_client, "p2").window("10.0.0.1", 0)["flows"] == 2


def test_direction_all_profiles_destinations(redis_client: RedisClient) -> None:
    events = [(NEW_FLOW, flow(0.0, "10.0.0.1", "8.8.8.8")),
              (NEW_FLOW, flow(1.0, "10.0.0.2", "8.8.8.8"))]
    run_profiler(redis_client, "p3", events, direction="all")
    store = Store(redis_client, "p3")
    assert store.profiles() == ["10.0.0.1", "10.0.0.2", "8.8.8.8"]
    assert store.window("8.8.8.8", 0)["flows_in"] == 2
    assert store.window("8.8.8.8", 0)["flows"] == 0
    run_profiler(redis_client, "p4", events, direction="out")
    assert Store(redis_client, "p4").profiles() == ["10.0.0.1", "10.0.0.2"]


def test_many_windows_and_exact_profile_values(redis_client: RedisClient) -> None:
    # More windows than one store script call takes, times written as Python writes floats.
    events = [(NEW_FLOW, flow(1000.25 + i, f"10.1.{i // 250}.{i % 250}", "8.8.8.8",
                              sbytes=2**60 + i))
              for i in range(1200)]
    events.append((NEW_FLOW, flow(2000.5, "10.1.0.0", "8.8.4.4", proto=["odd"])))
    run_profiler(redis_client, "p5", events, width=10_000.0)
    store = Store(redis_client, "p5")
    assert len(store.profiles()) == 1200
    assert store.profile("10.1.0.0") == {"first_seen": "1000.25", "last_seen": "2000.5",
                                         "flows": "2"}
    assert store.profile("10.1.4.199")["first_seen"] == repr(1000.25 + 1199)
    window = store.window("10.1.0.0", 0)
    assert window["sbytes"] == 2**60 + 10 and window["dbytes"] == 40  # exact beyond 2**53
    assert window["dst_ips"] == {"8.8.8.8": 1, "8.8.4.4": 1}
    assert window["dst_ports"] == {"tcp/80/SF": 1, "['odd']/80/SF": 1}
    assert store.window("10.1.4.199", 0)["dst_ports"] == {"tcp/80/SF": 1}


def test_a_window_late_records_went_back_to_is_closed_again(
        redis_client: RedisClient) -> None:
    # A live conn record comes when its connection ends: its window may be closed. Its
    # modules' state for that window must be let go too, at the next window boundary.
    a, b = "10.0.0.1", "10.0.0.2"
    events = [
        (NEW_FLOW, flow(1000.0, a, "8.8.8.8")),  # window 0
        (NEW_FLOW, flow(1110.0, b, "8.8.8.8")),  # window 1: closes window 0
        (NEW_FLOW, flow(1050.0, a, "1.1.1.1")),  # late, window 0
        (NEW_FLOW, flow(1060.0, b, "1.1.1.1")),  # late, window 0, a profile new there
        (NEW_FLOW, flow(1120.0, a, "8.8.8.8")),  # window 1
        (NEW_FLOW, flow(1210.0, a, "8.8.8.8")),  # window 2: closes 1, and 0 again
        (NEW_FLOW, flow(1070.0, a, "9.9.9.9")),  # late again: closed again at the end
    ]
    out = run_profiler(redis_client, "p5", events, width=100.0)
    order = [(ch, ev["profile"], ev["tw"], ev.get("uid")) for ch, ev in out
             if ch in (NEW_FLOW, TW_CLOSED)]
    closings = [(p, tw) for ch, p, tw, _ in order if ch == TW_CLOSED]
    assert closings == [(a, 0), (a, 0), (b, 0), (a, 1), (b, 1), (a, 0), (a, 2)]
    # Each closing comes after the records it closes.
    at = {(ch, uid): i for i, (ch, _, _, uid) in enumerate(order)}
    second, third = [i for i, (ch, p, tw, _) in enumerate(order)
                     if (ch, p, tw) == (TW_CLOSED, a, 0)][1:]
    assert at[(NEW_FLOW, "C1050.0")] < second < at[(NEW_FLOW, "C1070.0")] < third


def test_a_restarted_live_profiler_closes_the_window_left_open(
        redis_client: RedisClient) -> None:
    # The window open when an ingest stopped: its profiles so far must still be closed.
    from slipsd.store import resume_state

    a, b = "10.0.0.1", "10.0.0.2"
    store = Store(redis_client, "p6")
    first = Profiler(store, Producer(redis_client, "p6", TRAFFIC_CHANNELS, max_lag=10_000),
                     width=100.0, batch_size=3)
    for event in (flow(1000.0, a, "8.8.8.8"), flow(1110.0, a, "8.8.8.8"),
                  flow(1120.0, b, "8.8.8.8")):
        first.feed(event["ts"], NEW_FLOW, event)
    first.flush()  # then the process is gone: window 1 of a and b is open
    consumer = Consumer(redis_client, "p6", "check", list(TRAFFIC_CHANNELS), count=1000)
    consumer.start()
    second = Profiler(store, Producer(redis_client, "p6", TRAFFIC_CHANNELS, max_lag=10_000),
                      width=100.0, batch_size=3)
    second.resume(float(store.run_meta()["first_ts"]), *resume_state(store))
    second.feed(1130.0, NEW_FLOW, flow(1130.0, b, "1.1.1.1"))
    second.feed(1210.0, NEW_FLOW, flow(1210.0, b, "1.1.1.1"))  # window 2: closes 1
    second.finish()
    closed = []
    while not consumer.done:
        entries = consumer.read(200)
        closed += [(ev["profile"], ev["tw"]) for e in entries if e.channel == TW_CLOSED
                   for ev in e.events]
        consumer.ack(entries)
    assert closed == [(a, 0), (a, 1), (b, 1), (b, 2)]
