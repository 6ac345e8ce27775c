"""Small pieces of the logins module: SMTP reply parsing, software versions, held flows."""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
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


def keep_uid(uids: list[str], uid: str) -> None:
    if uid and uid not in uids and len(uids) < UIDS_KEPT:
        uids.append(uid)


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
