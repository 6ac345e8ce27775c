"""Small building blocks detection modules share (no Redis, no processes)."""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
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


class TrafficClock(Deadlines[T]):
    """Items held until the logs that could explain them have passed their deadline.

    Each watched log has a clock, the latest ``ts`` seen on it. ``settled`` is the
    traffic time before which every event has been delivered: the end of the last
    window closed (the profiler flushes first), then infinity at shutdown. Items are
    judged up to the ``horizon``: the slowest watched log's clock, or ``settled`` when
    that is later. Logs the input does not provide (new_input's ``log_types``) are not
    waited for: with none of them, nothing waits.

    The horizon only grows and each move releases what it passed, so no held item is
    ever due. That lets a hot path stay inline: compare a deadline with ``horizon``,
    judge a due item itself and ``push`` the others; call ``tick`` only for an event
    past the horizon (one at or before it cannot move it).
    """

    def __init__(self, logs: Iterable[str], judge: Callable[[T], None], cap: int) -> None:
        super().__init__(cap)
        self.judge = judge
        self.clocks = dict.fromkeys(logs, -math.inf)  # the watched logs the input provides
        self.settled = -math.inf
        self.horizon = -math.inf if self.clocks else math.inf

    def provided(self, log_types: Iterable[str]) -> None:
        """The input's ``log_types`` (new_input): stop waiting for the logs it lacks."""
        provided = set(log_types)
        self.clocks = {log: ts for log, ts in self.clocks.items() if log in provided}
        self._advance()

    def tick(self, log: str, ts: float) -> None:
        """A record of ``log`` at ``ts`` (a log not watched, or not provided, is ignored)."""
        clocks = self.clocks
        old = clocks.get(log)
        if old is None or ts <= old:
            return
        clocks[log] = ts
        if old > self.horizon:
            return  # another log is slower: the horizon stays
        # Inline: nearly every record of a watched log comes here.
        slowest = ts if len(clocks) == 1 else min(clocks.values())
        if slowest > self.horizon:  # the horizon is never below settled
            self.horizon = slowest
            line = self._line
            if (line and line[0][0] <= slowest) or self._late:
                self.release(slowest, self.judge)

    def settle(self, end: float) -> bool:
        """Every event before ``end`` was delivered (tw_closed); False if known already."""
        if end <= self.settled:
            return False
        self.settled = end
        self._advance()
        return True

    def finish(self) -> None:
        """The run is over: judge everything still held."""
        self.settle(math.inf)

    def hold(self, deadline: float, item: T) -> None:
        """Judge ``item`` now if its deadline has passed, else once the horizon reaches it."""
        if deadline <= self.horizon:
            self.judge(item)
        else:
            self.push(deadline, item, self.judge)

    def _advance(self) -> None:
        clocks = self.clocks
        slowest = min(clocks.values()) if clocks else math.inf
        self.horizon = slowest if slowest > self.settled else self.settled
        self.release(self.horizon, self.judge)


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
