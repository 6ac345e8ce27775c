"""Pairing TLS records with the byte counts of their connections, in either order.

ssl.log names the server (SNI) but not how much it sent; conn.log has the bytes
but not the name. A file replay usually delivers the conn record (stamped with
the connection's start) first, a live sensor delivers it when the connection
ends, long after the TLS record. Both sides wait a bounded time in traffic
seconds, and at most ``cap`` of each wait.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from slipsd.modtools import Deadlines

T = TypeVar("T")
TLS_WAIT = 3600.0  # traffic seconds a TLS record of interest waits for its conn record
CONN_WAIT = 300.0  # seconds after its end a TLS conn record waits for its ssl record
PAIRING_CAP = 20_000


class TlsPairs(Generic[T]):
    def __init__(self, min_bytes: int, cap: int = PAIRING_CAP) -> None:
        self.min_bytes = min_bytes
        self.now = float("-inf")
        self.waiting: dict[str, T] = {}  # uid -> TLS record of interest
        self.received: dict[str, int] = {}  # uid -> bytes the server sent
        self._waiting_until: Deadlines[str] = Deadlines(cap)
        self._received_until: Deadlines[str] = Deadlines(cap)

    def advance(self, ts: float) -> None:
        if ts > self.now:
            self.now = ts
            self._waiting_until.release(ts, self._drop_waiting)
            self._received_until.release(ts, self._drop_received)

    def _drop_waiting(self, uid: str) -> None:
        self.waiting.pop(uid, None)

    def _drop_received(self, uid: str) -> None:
        self.received.pop(uid, None)

    def tls(self, uid: str, ts: float, item: T) -> int | None:
        """A TLS record of interest: the bytes of its connection when already known."""
        self.advance(ts)
        size = self.received.pop(uid, None)
        if size is None and uid not in self.waiting:
            self.waiting[uid] = item
            self._waiting_until.push(ts + TLS_WAIT, uid, self._drop_waiting)
        return size

    def conn(self, uid: str, ts: float, duration: float, size: int,
             service: str) -> T | None:
        """A conn record: the waiting TLS record it completes with enough bytes, if any."""
        # A conn record's time is its start: a long one must not push the clock ahead.
        self.advance(ts)
        item = self.waiting.pop(uid, None)
        if item is not None:
            return item if size >= self.min_bytes else None
        if size >= self.min_bytes and "ssl" in service and uid:
            self.received[uid] = size
            self._received_until.push(ts + duration + CONN_WAIT, uid, self._drop_received)
        return None
