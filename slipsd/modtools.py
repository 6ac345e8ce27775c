"""Small building blocks detection modules share (no Redis, no processes)."""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")
H = TypeVar("H", bound=Hashable)


class Deadlines(Generic[T]):
    """Items held until traffic time passes their deadline, oldest deadline first.

    Cross-log correlation needs this: a conn record may reach a module before
    the dns or http record that explains it, so the verdict waits a little.
    Memory is bounded: past ``cap`` items the one waiting longest is judged early.

    Items come nearly in deadline order (traffic time): one whose deadline is not
    before the last one queued goes in a plain FIFO, the few others in a heap, and
    the two are merged as they are released. That spares a heap operation, O(log n),
    on nearly every item; the order is (deadline, arrival) either way.
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._line: deque[tuple[float, int, T]] = deque()
        self._late: list[tuple[float, int, T]] = []
        self._seq = 0  # ties keep arrival order, so results are deterministic

    def __len__(self) -> int:
        return len(self._line) + len(self._late)

    def push(self, deadline: float, item: T, judge: Callable[[T], None]) -> None:
        self._seq += 1
        line = self._line
        if not line or deadline >= line[-1][0]:
            line.append((deadline, self._seq, item))
        else:
            heapq.heappush(self._late, (deadline, self._seq, item))
        while len(line) + len(self._late) > self.cap:
            judge(self._pop())

    def release(self, now: float, judge: Callable[[T], None]) -> None:
        """Judge every item whose deadline is at or before ``now`` (a judge may push)."""
        line, late = self._line, self._late
        while True:
            if late and (not line or late[0] < line[0]):
                if late[0][0] > now:
                    return
                judge(heapq.heappop(late)[2])
            elif line and line[0][0] <= now:
                judge(line.popleft()[2])
            else:
                return

    def _pop(self) -> T:
        line, late = self._line, self._late
        if late and (not line or late[0] < line[0]):
            return heapq.heappop(late)[2]
        return line.popleft()[2]


class WindowState(Generic[T]):
    """Per-time-window state of a module, created on first use and dropped when old.

    The window geometry (origin and width) is learnt from tw_closed events, so
    a module needs no configuration to know when a window's state is stale.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self.state: dict[int, T] = {}
        self.origin: float | None = None  # start of window 0
        self.width = 3600.0

    def get(self, tw: int) -> T:
        item = self.state.get(tw)
        if item is None:
            item = self.state[tw] = self._factory()
        return item

    def learn(self, event: Mapping[str, Any]) -> None:
        """Take the window geometry from a tw_closed event."""
        self.width = float(event["end"]) - float(event["start"])
        self.origin = float(event["start"]) - int(event["tw"]) * self.width

    def forget_ending_before(self, ts: float) -> None:
        if self.origin is None:
            return
        origin, width = self.origin, self.width
        for tw in [t for t in self.state if origin + (t + 1) * width < ts]:
            del self.state[tw]


def powers(first: int, before: int, now: int) -> Iterator[int]:
    """The levels first, 10*first, 100*first, ... that a count passed going from before to now.

    Reporting only at these levels is how modules keep a growing behaviour (a
    scan, a brute force) to a handful of evidence instead of one per flow.
    """
    level = max(1, first)
    while level <= now:
        if level > before:
            yield level
        level *= 10


class CappedSet(OrderedDict[H, None]):
    """An insertion-ordered set that forgets its least recently added members past ``cap``.

    It is the OrderedDict itself, so ``in`` is the dict's own test with no Python call:
    modules ask it for nearly every record. A hot loop may inline ``add`` on it."""

    def __init__(self, cap: int) -> None:
        super().__init__()
        self.cap = cap

    def add(self, item: H) -> None:
        # Assigning keeps a member in place; one move makes it the newest.
        self[item] = None
        self.move_to_end(item)
        if len(self) > self.cap:
            self.popitem(last=False)
