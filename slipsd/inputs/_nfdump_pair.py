"""Joining the two directions of a connection, and the loop over nfdump's output lines.

nfcapd files usually hold unidirectional flows: a TCP connection is two records,
one per direction. Records come in start-time order (nfdump ``-O tstart``); a
record waits up to ``PAIR_WINDOW_MS`` for the record of the reverse 5-tuple,
and the two become one connection with per-direction counters and flags, which
is what makes Zeek's conn_state derivable. Memory is bounded by the records
started within that window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from slipsd.inputs._common import FileStats, LineError
from slipsd.inputs._nfdump_flows import (
    ICMP,
    ICMP6,
    META_PREFIXES,
    Half,
    OnError,
    Record,
    build_event,
    orig_first,
    parse_line,
    server_side,
)

PAIR_WINDOW_MS = 30_000
Key = tuple[int, str, int, str, int]


@dataclass(slots=True)
class _Entry:
    half: Half
    key: Key | None
    reply: Half | None = None
    done: bool = False


class Pairer:
    """Joins each record with the reverse-direction record that starts soon after it."""

    def __init__(self, window_ms: int = PAIR_WINDOW_MS) -> None:
        self.window = window_ms
        self.queue: deque[_Entry] = deque()  # in start order, emitted from the left
        self.waiting: dict[Key, deque[_Entry]] = {}
        self.pairs = 0

    def push(self, h: Half) -> Iterator[Record]:
        if h.opkts or h.obyts or h.proto in (ICMP, ICMP6):
            # Already both directions; ICMP requests and replies differ in type, not ports.
            self.queue.append(_Entry(h, None, done=True))
        elif not self._join(h):
            key = (h.proto, h.saddr, h.sport, h.daddr, h.dport)
            entry = _Entry(h, key)
            self.queue.append(entry)
            self.waiting.setdefault(key, deque()).append(entry)
        limit = h.start - self.window
        queue = self.queue
        while queue and (queue[0].done or queue[0].half.start < limit):
            yield self._emit(queue.popleft())

    def flush(self) -> Iterator[Record]:
        while self.queue:
            yield self._emit(self.queue.popleft())

    def _join(self, h: Half) -> bool:
        rkey = (h.proto, h.daddr, h.dport, h.saddr, h.sport)
        candidates = self.waiting.get(rkey)
        if candidates is None:
            return False
        entry = None
        while candidates:
            entry = candidates.popleft()
            if h.start - entry.half.start <= self.window:
                break
            entry = None  # too old: emitted alone once the queue gets to it
        if not candidates:
            del self.waiting[rkey]
        if entry is None:
            return False
        entry.reply = h
        entry.done = True
        self.pairs += 1
        return True

    def _emit(self, entry: _Entry) -> Record:
        if entry.key is not None and not entry.done:
            waiting = self.waiting.get(entry.key)
            if waiting and waiting[0] is entry:
                waiting.popleft()
                if not waiting:
                    del self.waiting[entry.key]
        a, b = entry.half, entry.reply
        if b is not None:
            return build_event(a, b) if orig_first(a, b) else build_event(b, a)
        if entry.key is not None and server_side(a):
            return build_event(None, a)
        return build_event(a, None)


@dataclass
class Totals:
    """What nfdump's own statistics lines said, to check nothing was lost."""

    processed: int = -1


def read_lines(
    lines: Iterable[str], stats: FileStats, on_error: OnError, totals: Totals,
    window_ms: int = PAIR_WINDOW_MS,
) -> Iterator[Record]:
    """Events from nfdump's text output, in start-time order; bad lines go to on_error."""
    pairer = Pairer(window_ms)
    name = stats.name
    lineno = parsed = bad = meta = 0
    try:
        for lineno, line in enumerate(lines, 1):
            if line[:1].isdigit():
                try:
                    half = parse_line(line, lineno)
                except ValueError as exc:
                    bad += 1
                    on_error(LineError(name, lineno, str(exc)))
                    continue
                parsed += 1
                yield from pairer.push(half)
            elif not line.strip() or line.startswith(META_PREFIXES):
                meta += 1
                if line.startswith("Total flows processed:"):
                    totals.processed = _passed(line)
            else:
                bad += 1
                on_error(LineError(name, lineno, f"not a flow record: {line.strip()[:80]!r}"))
        yield from pairer.flush()
    finally:
        stats.lines, stats.parsed, stats.bad, stats.meta = lineno, parsed, bad, meta


def _passed(line: str) -> int:
    # "Total flows processed: 4593, passed: 4593, Blocks skipped: 0, Bytes read: 385916"
    for part in line.split(","):
        label, _, value = part.partition(":")
        if label.strip() == "passed" and value.strip().isdigit():
            return int(value)
    return -1
