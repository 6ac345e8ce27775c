"""sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET, when it is set."""

from __future__ import annotations

import os
import socket


def notify(**fields: str | int) -> bool:
    """Send ``READY=1``-style fields; False when not started by a notify-aware parent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        # Never wait: a notify reader that stops reading (a full queue) must not stall
        # slipsd's event loop, which sends the watchdog pings. A lost ping is harmless.
        sock.setblocking(False)
        try:
            sock.sendto(message.encode(), address)
        except OSError:
            return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of $WATCHDOG_USEC), None when not asked for."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec or (pid and pid != str(os.getpid())):
        return None  # not set, or meant for another process
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None
