"""Reading windows back from a real redis-server: whole, and only their busiest entries."""

from __future__ import annotations

from slipsd.outputs import TOP_LISTED, busiest
from slipsd.store import RedisClient, Store
from slipsd.store._traffic import WindowDelta
from slipsd.store._windows import WINDOWS_PER_CALL


def _delta(dst: dict[str, int], ports: dict[str, int]) -> WindowDelta:
    return WindowDelta(flows=sum(dst.values()), sbytes=7, dbytes=9,
                       dst_ips=dict(dst), dst_ports=dict(ports))


def test_the_busiest_entries_are_picked_in_redis_as_python_would(
    redis_client: RedisClient,
) -> None:
    store = Store(redis_client, "tops")
    # Ties on both sides of the cut, a window shorter than the cut, and enough windows
    # for more than one script call.
    deltas = {
        ("10.0.0.1", 0): _delta({f"10.0.1.{i}": 1 + i % 4 for i in range(40)},
                                {f"tcp/{p}/SF": 5 for p in range(80, 95)}),
        ("10.0.0.1", 1): _delta({"10.0.2.1": 3, "10.0.2.2": 3}, {"udp/53/SF": 2}),
        **{("10.0.0.2", tw): _delta({f"10.0.3.{tw % 9}": tw + 1, "10.0.3.200": 1},
                                    {"tcp/443/SF": 1})
           for tw in range(WINDOWS_PER_CALL + 5)},
    }
    profiles = {"10.0.0.1": (1.0, 2.0, 1), "10.0.0.2": (1.0, 2.0, 1)}
    store.write_traffic(["10.0.0.1", "10.0.0.2"], profiles, deltas, {})
    tops = store.all_windows(top=3)
    assert tops.keys() == deltas.keys()
    whole = {pair: store.window(*pair) for pair in deltas}
    for pair, summary in whole.items():
        picked = tops[pair]
        assert {k: picked[k] for k in ("flows", "sbytes", "dbytes", "flows_in")} == \
            {k: summary[k] for k in ("flows", "sbytes", "dbytes", "flows_in")}
        for table in ("dst_ips", "dst_ports"):
            expected = sorted(summary[table].items(), key=lambda kv: (-kv[1], kv[0]))[:3]
            assert list(picked[table].items()) == expected, (pair, table)
    assert list(tops["10.0.0.1", 0]["dst_ips"]) == ["10.0.1.11", "10.0.1.15", "10.0.1.19"]


def test_a_window_without_destinations(redis_client: RedisClient) -> None:
    store = Store(redis_client, "tops-empty")
    store.write_traffic(["10.0.0.9"], {"10.0.0.9": (1.0, 2.0, 0)},
                        {("10.0.0.9", 4): WindowDelta(flows_in=2)}, {})
    assert store.all_windows(top=TOP_LISTED) == {("10.0.0.9", 4): {
        "flows": 0, "sbytes": 0, "dbytes": 0, "flows_in": 2, "dst_ips": {}, "dst_ports": {}}}


def test_a_window_file_lists_the_busiest_first_ties_by_name() -> None:
    counts = {f"h{i:02}": 2 for i in range(12)} | {"z": 5, "a": 1}
    assert busiest(counts) == [("z", 5)] + [(f"h{i:02}", 2) for i in range(TOP_LISTED - 1)]
