"""Pairing TLS records with the byte counts of their connections, in either order.

ssl.log names the server (SNI) but not how much it sent; conn.log has the bytes
but not the name. A file replay usually delivers the conn record (stamped with
the connection's start) first, a live sensor delivers it when the connection
ends, long after the TLS record. Both sides wait a bounded time in traffic
seconds, and at most ``cap`` of each wait.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")
TLS_WAIT = 3600.0  # traffic seconds a TLS record of interest waits for its conn record
CONN_WAIT = 300.0  # seconds after its end a TLS conn record waits for its ssl record
PAIRING_CAP = 20_000
# A heap of (deadline, arrival, uid): modtools.Deadlines, inline. Every conn record
# advances the clock, and a TLS one is pushed: the method calls were most of the cost.
Heap = list[tuple[float, int, str]]


class TlsPairs(Generic[T]):
    def __init__(self, min_bytes: int, cap: int = PAIRING_CAP) -> None:
        self.min_bytes = min_bytes
        self.cap = cap
        self.now = float("-inf")
        self.waiting: dict[str, T] = {}  # uid -> TLS record of interest
        self.received: dict[str, int] = {}  # uid -> bytes the server sent
        self._waiting_until: Heap = []
        self._received_until: Heap = []
        self._seq = 0  # ties keep arrival order

    def advance(self, ts: float) -> None:
        if ts > self.now:
            self.now = ts
            heap = self._waiting_until
            while heap and heap[0][0] <= ts:
                self.waiting.pop(heapq.heappop(heap)[2], None)
            heap = self._received_until
            while heap and heap[0][0] <= ts:
                self.received.pop(heapq.heappop(heap)[2], None)

    def _push(self, heap: Heap, table: dict[str, T] | dict[str, int], deadline: float,
              uid: str) -> None:
        self._seq += 1
        heapq.heappush(heap, (deadline, self._seq, uid))
        while len(heap) > self.cap:  # the one waiting longest goes first
            table.pop(heapq.heappop(heap)[2], None)

    def tls(self, uid: str, ts: float, item: T) -> int | None:
        """A TLS record of interest: the bytes of its connection when already known."""
        self.advance(ts)
        size = self.received.pop(uid, None)
        if size is None and uid not in self.waiting:
            self.waiting[uid] = item
            self._push(self._waiting_until, self.waiting, ts + TLS_WAIT, uid)
        return size

    def conn(self, flow: Mapping[str, Any]) -> T | None:
        """A conn record: the waiting TLS record it completes with enough bytes, if any.

        Given the whole record: most are neither awaited nor big TLS transfers, and
        those need only three of its fields.
        """
        # A conn record's time is its start: a long one must not push the clock ahead.
        ts = flow["ts"]
        if ts > self.now:
            self.advance(ts)
        size = flow["dbytes"]
        if self.waiting:
            item = self.waiting.pop(flow["uid"], None)
            if item is not None:
                return item if size >= self.min_bytes else None
        if size >= self.min_bytes and "ssl" in flow["service"]:
            uid = flow["uid"]
            if uid:
                self.received[uid] = size
                self._push(self._received_until, self.received,
                           ts + flow["duration"] + CONN_WAIT, uid)
        return None
