"""Lists, host names, user agents, files.log transfers: what the http checks rely on."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from slipsd.netinfo import parse_ip, shipped_data

# Second-level labels under which country domains register names (google.co.uk).
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "ac", "gov", "edu", "or", "ne", "gob"})
_CACHE_CAP = 4096

# (family, substrings of the lower-cased user agent), checked in this order: Windows
# Phone agents also name Android and iPhone, Android agents also say Linux.
_FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Windows", ("windows phone",)),
    ("Android/ChromeOS", ("android", "dalvik", " cros ", "(cros")),
    ("Apple", ("iphone", "ipad", "ipod", "macintosh", "mac os x", "cfnetwork", "darwin/")),
    ("Windows", ("windows", "win32", "win64", "winnt", "microsoft-cryptoapi",
                 "microsoft bits", "microsoft ncsi", "microsoft-delivery-optimization")),
    ("Linux", ("x11;", "linux")),
    ("BSD", ("freebsd", "openbsd", "netbsd")),
)


def load_entries(path: str, default: str) -> list[str]:
    """Lower-cased entries of a list file, one a line, without blanks and # comments."""
    text = Path(path or shipped_data(default)).read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        entry = line.strip().lower()
        if entry and not entry.startswith("#"):
            out.append(entry)
    return out


def list_problem(path: str, default: str) -> str | None:
    """Why a configured (or the shipped) list cannot be read, or None."""
    where = path or str(shipped_data(default))
    try:
        load_entries(path, default)
    except OSError as exc:
        return f"{where}: {exc.strerror or exc}"
    except UnicodeDecodeError:
        return f"{where}: not UTF-8 text"
    return None


class UserAgentList:
    """Substring entries, and "=" entries that must equal the whole agent (case ignored)."""

    def __init__(self, entries: list[str]) -> None:
        self.exact = {e[1:] for e in entries if e.startswith("=")}
        self.parts = tuple(e for e in entries if not e.startswith("="))
        self._cache: dict[str, str | None] = {}

    def match(self, agent: str) -> str | None:
        """The entry the agent matches (exact ones with their "="), or None."""
        if agent in self._cache:
            return self._cache[agent]
        low = agent.strip().lower()
        found = f"={low}" if low in self.exact else next(
            (p for p in self.parts if p in low), None)
        if len(self._cache) >= _CACHE_CAP:
            self._cache.clear()
        self._cache[agent] = found
        return found


class DomainList:
    """Domains matching themselves and their subdomains; ``name.*`` for any country."""

    def __init__(self, entries: list[str]) -> None:
        self.domains = {e.strip(".") for e in entries if not e.endswith(".*")}
        self.any_tld = {e[:-2].strip(".") for e in entries if e.endswith(".*")}
        self._cache: dict[str, str | None] = {}

    def match(self, host: str) -> str | None:
        """The entry that ``host`` (already normalised) falls under, or None."""
        if not host:
            return None
        # Every TLS and HTTP record asks; servers repeat all day.
        cache = self._cache
        if host in cache:
            return cache[host]
        if len(cache) >= _CACHE_CAP:
            cache.clear()
        found = cache[host] = self._match(host)
        return found

    def _match(self, host: str) -> str | None:
        labels = host.split(".")
        for i in range(len(labels)):
            suffix = ".".join(labels[i:])
            if suffix in self.domains:
                return suffix
            if labels[i] in self.any_tld:
                rest = labels[i + 1:]
                if len(rest) == 1 or (len(rest) == 2 and rest[0] in _SECOND_LEVEL):
                    return f"{labels[i]}.*"
        return None


def normalize_host(host: object) -> str:
    """A Host header or server name without port, trailing dot and case."""
    return _normalize(host) if isinstance(host, str) else ""


@functools.lru_cache(maxsize=_CACHE_CAP)  # every http and ssl record; servers repeat all day
def _normalize(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def is_ip_literal(host: str) -> bool:
    return parse_ip(host) is not None


@functools.lru_cache(maxsize=_CACHE_CAP)  # a host sends the same few agents
def os_family(agent: str) -> str | None:
    """The operating system a user agent claims, None when it claims none."""
    low = agent.lower()
    for family, needles in _FAMILIES:
        if any(n in low for n in needles):
            return family
    return None


def clip(text: str, limit: int = 100) -> str:
    """Text fit for a one-line description: control characters escaped, length capped."""
    safe = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


def transfer_hosts(event: Mapping[str, Any]) -> tuple[str, str]:
    """The receiver and the sender of a files.log transfer ("" when unknown)."""
    rx, tx = event.get("rx_hosts"), event.get("tx_hosts")
    if isinstance(rx, list) and rx:  # Zeek before 6: the hosts of the transfer
        return str(rx[0]), str(tx[0]) if isinstance(tx, list) and tx else ""
    if event.get("is_orig"):  # sent by the connection's originator
        return event["daddr"], event["saddr"]
    return event["saddr"], event["daddr"]
