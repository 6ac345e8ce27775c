"""SIGTERM turned into ordinary thread work, so that the signal handler takes no lock.

A Python signal handler runs in the main thread between two bytecodes, possibly
while that thread holds a lock: ``threading.Event.set`` in a handler deadlocks
when the main thread was inside that event's ``wait``, or inside the first
handler's ``set`` when a second SIGTERM lands (slipsd stopping a finished
run's children and then everything, or systemd signalling the whole cgroup).
The handler here only sets a flag and writes a byte to a pipe; a thread of its
own reads the byte and runs the callbacks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType


class StopOnSigterm:
    def __init__(self, *callbacks: Callable[[], None]) -> None:
        self.requested = False
        self._callbacks = callbacks
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        threading.Thread(target=self._relay, name="sigterm", daemon=True).start()
        signal.signal(signal.SIGTERM, self._handler)

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        with contextlib.suppress(BlockingIOError):  # a byte is already waiting
            os.write(self._write, b"\0")

    def _relay(self) -> None:
        os.read(self._read, 1)
        for callback in self._callbacks:
            callback()
