"""The building blocks modules share."""

from __future__ import annotations

from slipsd.modtools import CappedSet, Deadlines, WindowState, powers


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
