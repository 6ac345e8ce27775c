"""Name classification, TXT entropy and the bookkeeping of the dns module."""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_UIDS = 10
NAMES_CAP = 100_000  # names remembered per profile, window and finding
# Suffixes that never reach the public DNS: RFC 6761/6762 special-use names, the
# ".home.arpa" family, and names home routers and enterprises use by convention.
LOCAL_TLDS = frozenset({
    "local", "localdomain", "localhost", "lan", "home", "internal", "intranet", "corp",
    "private", "test", "invalid", "arpa",
})
REVERSE_SUFFIXES = (".in-addr.arpa", ".ip6.arpa")
# mDNS and LLMNR: link-local name services whose answers are local by design.
LINK_LOCAL_DNS_PORTS = frozenset({5353, 5355})
_TXT_FRAME = re.compile(r"(?:^| )TXT \d+ ?")
# Records whose random part is a published token, not data: SPF/DKIM/DMARC and the
# domain-ownership proofs that sit next to SPF at a zone's apex.
_KNOWN_TXT = re.compile(
    r"(v=(spf1|dkim1|dmarc1|stsv1|tlsrptv1|bimi1)\b|ms=|[\w.-]*(verification|verify|"
    r"validation|site-token)[\w.-]*[=:])", re.IGNORECASE)


def listed(names: Mapping[str, str] | list[str], count: int = 5) -> str:
    """The first ``count`` names, comma-separated, for evidence descriptions."""
    items = list(names)
    more = ", ..." if len(items) > count else ""
    return ", ".join(items[:count]) + more


def normalise(query: str) -> str:
    return query.strip().rstrip(".").lower()


def is_reverse(name: str) -> bool:
    return name.endswith(REVERSE_SUFFIXES)


def is_local_name(name: str) -> bool:
    """Single-label names and names under a suffix that is not on the public DNS."""
    head, dot, tld = name.rpartition(".")
    return not dot or not head or tld in LOCAL_TLDS


def is_service_name(name: str) -> bool:
    """SRV-style service discovery (_ldap._tcp...): failures are routine, not a DGA."""
    return name.startswith("_") or "._" in name


def is_dnsbl_style(name: str) -> bool:
    """A reversed address under a zone (4.3.2.1.zen.example): blocklist and reputation
    lookups, which answer NXDOMAIN for every clean address."""
    labels = name.split(".")
    if len(labels) > 4 and all(label.isdigit() for label in labels[:4]):
        return True
    return len(labels) > 16 and all(len(label) == 1 for label in labels[:16])


def embeds_address(name: str, ip: str) -> bool:
    """Wildcard services (10.0.0.1.nip.io, 192-168-1-5.x.plex.direct) answer with the
    address written in the name: a private answer there is what was asked for."""
    return ip in name or ip.replace(".", "-").replace(":", "-") in name


def txt_payload(answer: str) -> str:
    """The text of a Zeek-rendered TXT answer ("TXT 9 txtvers=1 TXT 5 note=") without
    the framing Zeek adds before each character-string."""
    return "".join(_TXT_FRAME.split(answer))


def is_known_txt(payload: str) -> bool:
    return _KNOWN_TXT.match(payload) is not None


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    size = len(text)
    return -sum(n / size * math.log2(n / size) for n in Counter(text).values())


@dataclass
class Window:
    """What one profile did in one time window: names per finding, capped."""

    txt: dict[str, str] = field(default_factory=dict)  # name -> uid
    private: dict[str, str] = field(default_factory=dict)
    nxdomains: dict[str, str] = field(default_factory=dict)
    reverse: dict[str, str] = field(default_factory=dict)
    arpa_burst: int = 0  # size of the first burst of reverse lookups, 0 before one
    arpa_counted: int = 0  # reverse names already weighed against the levels


class Burst:
    """Distinct names seen within the last ``span`` seconds of traffic time."""

    def __init__(self, span: float, cap: int) -> None:
        self.span = span
        self.cap = cap
        self.events: deque[tuple[float, str]] = deque()
        self.names: Counter[str] = Counter()

    def add(self, ts: float, name: str) -> int:
        events, names = self.events, self.names
        while events and (ts - events[0][0] > self.span or len(events) >= self.cap):
            _, old = events.popleft()
            names[old] -= 1
            if not names[old]:
                del names[old]
        events.append((ts, name))
        names[name] += 1
        return len(names)

    def last(self) -> float:
        return self.events[-1][0] if self.events else -math.inf

    def sample(self, count: int) -> list[str]:
        return list(self.names)[:count]

