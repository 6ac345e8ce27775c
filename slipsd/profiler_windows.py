"""The profiler's time windows: which are closed, and for which profiles each gets tw_closed.

A window is closed once traffic time has moved past it: every profile active in it then
gets one ``tw_closed`` event. A record later than that (a conn record is logged when its
connection ends) keeps its window, which is closed again for its profile at the next
window boundary, or the modules' state for it would never be let go. The profiler
(slipsd/profiler.py) decides when; this holds the bookkeeping and emits the events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from slipsd.events import TW_CLOSED


class TimeWindows:
    def __init__(self, emit: Callable[[str, dict[str, Any]], None], width: float) -> None:
        self._emit = emit
        self._width = width
        self.next_close = 0  # windows below this index are closed
        self.active: dict[int, set[str]] = {}  # open window -> profiles seen in it
        # Closed window -> profiles that late records put back in it.
        self.late: dict[int, set[str]] = {}

    def note(self, seen: Iterable[tuple[str, int]]) -> None:
        """The (profile, window) pairs records added since the last store write.

        Windows change state only right after a store write, so this is the state the
        records had when they were fed."""
        next_close = self.next_close
        active, late = self.active, self.late
        for ip, tw in seen:
            windows = active if tw >= next_close else late
            members = windows.get(tw)
            if members is None:
                members = windows[tw] = set()
            members.add(ip)

    def close_before(self, current: int, start: float) -> None:
        """Traffic time reached window ``current``: close the windows before it, and again
        those late records reopened."""
        for tw in sorted(self.late):
            self._emit_closed(start, tw, self.late.pop(tw))
        closing = sorted(tw for tw in self.active if tw < current)
        for tw in closing:
            self._emit_closed(start, tw, self.active.pop(tw))
        self.next_close = current

    def close_all(self, start: float | None) -> None:
        """End of input: close every window still open or reopened."""
        for windows in (self.late, self.active):
            for tw in sorted(windows):
                self._emit_closed(start, tw, windows[tw])
            windows.clear()

    def _emit_closed(self, start: float | None, tw: int, profiles: Iterable[str]) -> None:
        assert start is not None
        begin = start + tw * self._width
        for ip in sorted(profiles):
            self._emit(
                TW_CLOSED, {"profile": ip, "tw": tw, "start": begin, "end": begin + self._width}
            )
