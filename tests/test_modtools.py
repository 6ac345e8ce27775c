"""The building blocks modules share."""

from __future__ import annotations

import math

from slipsd.modtools import CappedSet, Deadlines, TrafficClock, WindowState, powers


def test_powers_of_ten_levels() -> None:
    assert list(powers(10, 0, 9)) == []
    assert list(powers(10, 9, 10)) == [10]
    assert list(powers(10, 10, 99)) == []
    assert list(powers(10, 5, 1500)) == [10, 100, 1000]
    assert list(powers(0, 0, 1)) == [1]


def test_deadlines_release_in_deadline_order_and_cap_memory() -> None:
    judged: list[str] = []
    queue: Deadlines[str] = Deadlines(cap=3)
    for deadline, item in ((5.0, "b"), (1.0, "a"), (9.0, "d"), (7.0, "c")):
        queue.push(deadline, item, judged.append)
    assert judged == ["a"]  # over the cap: the earliest deadline is judged at once
    queue.release(7.0, judged.append)
    assert judged == ["a", "b", "c"] and len(queue) == 1


def test_window_state_forgets_old_windows() -> None:
    windows: WindowState[list[int]] = WindowState(list)
    windows.get(0).append(1)
    windows.get(2).append(3)
    windows.forget_ending_before(10_000.0)  # geometry unknown yet: keeps everything
    assert set(windows.state) == {0, 2}
    windows.learn({"tw": 1, "start": 200.0, "end": 300.0})
    assert (windows.origin, windows.width) == (100.0, 100.0)
    windows.forget_ending_before(250.0)  # window 0 ended at 200
    assert set(windows.state) == {2}


def test_capped_set_forgets_least_recent() -> None:
    items = CappedSet(2)
    for item in ("a", "b", "a", "c"):
        items.add(item)
    assert "a" in items and "c" in items and "b" not in items and len(items) == 2


def _clock(logs: tuple[str, ...], cap: int = 100) -> tuple[TrafficClock[str], list[str]]:
    judged: list[str] = []
    return TrafficClock(logs, judged.append, cap), judged


def test_traffic_clock_waits_for_the_slowest_log_and_releases_in_deadline_order() -> None:
    clock, judged = _clock(("dns", "ssl"))
    for deadline, item in ((30.0, "c"), (10.0, "a"), (20.0, "b"), (20.0, "b2")):
        clock.hold(deadline, item)
    clock.tick("dns", 25.0)
    assert judged == [] and clock.horizon == -math.inf  # ssl has said nothing yet
    clock.tick("ssl", 50.0)
    # dns is the slowest now: up to its 25 s, ties in arrival order.
    assert judged == ["a", "b", "b2"] and clock.horizon == 25.0
    clock.tick("ssl", 60.0)  # not the slowest: nothing moves
    clock.tick("dns", 24.0)  # a clock never goes back
    clock.tick("x509", 99.0)  # not watched
    assert judged == ["a", "b", "b2"] and clock.horizon == 25.0
    clock.hold(24.0, "late")  # already due: judged at once, not queued
    assert judged[-1] == "late" and len(clock) == 1
    clock.tick("dns", 70.0)
    assert judged[-1] == "c" and clock.horizon == 60.0 and len(clock) == 0


def test_traffic_clock_settled_releases_and_only_grows() -> None:
    clock, judged = _clock(("ssh",))
    clock.hold(100.0, "a")
    clock.hold(200.0, "b")
    assert clock.settle(150.0) and judged == ["a"] and clock.horizon == 150.0
    # Another profile's closing of the same window, or a late window's: nothing new.
    assert not clock.settle(150.0) and not clock.settle(120.0)
    assert clock.settled == 150.0
    clock.tick("ssh", 140.0)  # behind settled: the horizon stays
    assert clock.horizon == 150.0 and judged == ["a"]
    clock.finish()  # shutdown judges what is left, whatever the clocks say
    assert judged == ["a", "b"] and clock.horizon == math.inf
    clock.hold(1e12, "after")
    assert judged[-1] == "after"


def test_traffic_clock_does_not_wait_for_logs_the_input_lacks() -> None:
    clock, judged = _clock(("dns", "http", "ssl"))
    clock.hold(10.0, "a")
    clock.provided(["conn", "dns", "ssl"])  # new_input: no http.log
    assert list(clock.clocks) == ["dns", "ssl"] and judged == []
    clock.tick("http", 100.0)  # ignored: the input said it has none
    clock.tick("dns", 100.0)
    clock.tick("ssl", 100.0)
    assert judged == ["a"]
    flows_only, judged = _clock(("dns", "http", "ssl"))
    flows_only.hold(10.0, "b")
    flows_only.provided(["conn"])  # Argus, nfdump: nothing to wait for
    assert judged == ["b"] and flows_only.horizon == math.inf
    flows_only.hold(20.0, "c")
    assert judged == ["b", "c"] and not flows_only.clocks


def test_traffic_clock_cap_judges_the_longest_waiting_first() -> None:
    clock, judged = _clock(("dns",), cap=2)
    for deadline, item in ((3.0, "c"), (1.0, "a"), (2.0, "b")):
        clock.hold(deadline, item)
    assert judged == ["a"] and len(clock) == 2
