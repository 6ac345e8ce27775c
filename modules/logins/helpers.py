"""Small pieces of the logins module: SMTP reply parsing, software versions, held flows."""

from __future__ import annotations

import bisect
import heapq
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

# Zeek states of a connection whose handshake completed.
ESTABLISHED = frozenset({"SF", "S1", "S2", "S3", "RSTO", "RSTR"})
UIDS_KEPT = 10

_REPLY = re.compile(r"\s*(\d{3})\b(.*)", re.S)
_AUTH = re.compile(r"auth", re.I)
_FAILED = re.compile(r"fail|bad|invalid|incorrect|denied|wrong|unsuccessful|rejected|5\.7\.8",
                     re.I)


def smtp_auth_failed(last_reply: Any) -> bool:
    """Whether an SMTP server reply says the client's credentials were refused.

    535 is the authentication-failed code (RFC 4954); other permanent errors count
    when their text is about authentication failing (for example "554 5.7.1 bad
    smtp-auth user"). 454 is a temporary server-side failure, not a wrong password,
    and "530 authentication required" asks for a login without refusing one.
    """
    if not isinstance(last_reply, str):
        return False
    match = _REPLY.match(last_reply)
    if match is None:
        return False
    code, text = match.group(1), match.group(2)
    if code == "535":
        return True
    return code.startswith("5") and bool(_AUTH.search(text)) and bool(_FAILED.search(text))


def software_version(event: Mapping[str, Any]) -> str:
    """The version string Zeek logged for a software record, or ''."""
    raw = event.get("unparsed_version")
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    parts = [event.get(f"version_{p}") for p in ("major", "minor", "minor2", "minor3")]
    numbers = ".".join(str(p) for p in parts if isinstance(p, int))
    addl = event.get("version_addl")
    name = event.get("name") if isinstance(event.get("name"), str) else ""
    text = " ".join(x for x in (name, numbers, addl if isinstance(addl, str) else "") if x)
    return text.strip()


def powers(first: int, before: int, now: int) -> Iterator[int]:
    """The thresholds first, 10*first, 100*first, ... that a count passed going before -> now."""
    level = max(1, first)
    while level <= now:
        if level > before:
            yield level
        level *= 10


def keep_uid(uids: list[str], uid: str) -> None:
    if uid and uid not in uids and len(uids) < UIDS_KEPT:
        uids.append(uid)


class CappedSet:
    """Insertion-ordered set that forgets its oldest members past ``cap``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._items: OrderedDict[str, None] = OrderedDict()

    def add(self, item: str) -> None:
        if item not in self._items:
            self._items[item] = None
            if len(self._items) > self.cap:
                self._items.popitem(last=False)

    def __contains__(self, item: object) -> bool:
        return item in self._items


@dataclass(slots=True)
class SshFlow:
    """A port-22 conn record waiting for a possible ssh.log record of the same connection."""

    ts: float
    uid: str
    saddr: str
    daddr: str
    tw: int
    profile: str
    sbytes: int
    dbytes: int


class Waiting:
    """Held flows ordered by the traffic time after which they can be judged."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._heap: list[tuple[float, int, SshFlow]] = []
        self._seq = 0

    def push(self, deadline: float, item: SshFlow, judge: Callable[[SshFlow], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, item))
        while len(self._heap) > self.cap:  # bounded memory: judge the oldest early
            judge(heapq.heappop(self._heap)[2])

    def release(self, now: float, judge: Callable[[SshFlow], None]) -> None:
        while self._heap and self._heap[0][0] <= now:
            judge(heapq.heappop(self._heap)[2])


@dataclass
class Counter:
    """A count with the flow uids behind it (the first few)."""

    count: int = 0
    uids: list[str] = field(default_factory=list)


@dataclass
class Burst:
    """The latest failure times of one client against one server, sorted."""

    times: list[float] = field(default_factory=list)
    uids: list[str] = field(default_factory=list)
    reported: bool = False

    def add(self, ts: float, size: int) -> None:
        bisect.insort(self.times, ts)
        del self.times[:-size]


@dataclass
class Window:
    """Findings of one time window (all profiles)."""

    logins: dict[str, dict[str, None]] = field(default_factory=dict)  # client -> servers
    guesses: dict[tuple[str, str, str], Counter] = field(default_factory=dict)
    smtp_failures: dict[tuple[str, str], Counter] = field(default_factory=dict)
    bursts: dict[tuple[str, str], Burst] = field(default_factory=dict)


class Windows:
    """Per-window state, dropped once traffic time is well past the window's end."""

    def __init__(self) -> None:
        self.state: dict[int, Window] = {}
        self.origin: float | None = None
        self.width = 3600.0

    def get(self, tw: int) -> Window:
        win = self.state.get(tw)
        if win is None:
            win = self.state[tw] = Window()
        return win

    def closed(self, event: Mapping[str, Any], margin: float) -> None:
        self.width = float(event["end"]) - float(event["start"])
        self.origin = float(event["start"]) - int(event["tw"]) * self.width
        limit = float(event["end"]) - margin - self.width
        for tw in [t for t in self.state if self.origin + (t + 1) * self.width < limit]:
            del self.state[tw]
