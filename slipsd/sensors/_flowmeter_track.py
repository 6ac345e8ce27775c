"""``Track``: what the flowmeter's plugin learns about one flow, packet by packet.

It lives in NFStream's meter process with its flow and is pickled once, when the flow
ends, to travel to the process that writes the logs (NFStream hands ended flows over a
multiprocessing queue). It pickles as a bare tuple of its values: the default for a
slotted class writes every slot's name with its value, for each of thousands of flows.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

MAX_MESSAGES = 10_000  # application records kept per flow (a flood on one 5-tuple)


class Track:
    """Everything the flowmeter learns about one flow packet by packet."""

    __slots__ = ("answered", "app", "buf", "buf_ts", "client", "errors", "hist", "hkeys", "icmp",
                 "ipb0", "ipb1", "msgs", "orig", "pending", "seen", "tcp")

    def __init__(self) -> None:
        self.hist = ""
        self.hkeys = 0  # bit per packet kind (see _flowmeter_plugin.count) already in hist
        self.ipb0 = self.ipb1 = 0
        self.icmp: tuple[int, int] | None = None
        self.tcp = False
        self.app = 0  # application handler (_flowmeter_handlers' NONE, SNIFF, HTTP ...)
        self.buf = b""  # a message head being gathered from several segments
        self.buf_ts = 0
        self.client = -1  # direction (0/1) of the TLS/HTTP client, once known
        self.seen = 0
        self.answered = 0  # HTTP requests that got their reply
        self.errors = 0
        self.msgs: list[tuple[str, dict[str, Any]]] = []
        self.pending: dict[int, dict[str, Any]] = {}
        # (address, port) that began the connection this flow continues after an active
        # timeout cut it; None for a flow that starts a connection.
        self.orig: tuple[str, int] | None = None

    def add(self, kind: str, rec: dict[str, Any]) -> None:
        if len(self.msgs) < MAX_MESSAGES:
            self.msgs.append((kind, rec))

    def __getstate__(self) -> tuple[Any, ...]:
        return _state(self)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for name, value in zip(Track.__slots__, state, strict=True):
            setattr(self, name, value)


_state = attrgetter(*Track.__slots__)
