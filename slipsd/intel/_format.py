"""Feed lines -> indicators: splitting, type inference and normalisation.

A line is either CSV (``indicator,threat_level,description,type`` or the
columns a header names) or a plain-list line (one indicator, maybe followed by
a comment or, hosts-file style, preceded by a sink address). docs/feeds.md
describes the format; everything here is pure functions of text.
"""

from __future__ import annotations

import csv
import functools
import re
import socket
from typing import NamedTuple

LEVELS: tuple[str, ...] = ("info", "low", "medium", "high", "critical")
LEVEL_RANK: dict[str, int] = {name: rank for rank, name in enumerate(LEVELS)}

# What an indicator is matched against. "hash32" is a 32-digit hex value from a
# plain list: an MD5 file hash and a JA3/JA3S fingerprint look the same, so it is
# matched as both (a real file hash equal to a fingerprint is not a concern).
KINDS = ("ip4", "ip6", "net4", "net6", "domain", "url", "asn", "file_hash",
         "tls_fingerprint", "hash32")

# Declared types in a feed's type column -> what the value must look like.
DECLARED = {
    "ip": "ip", "cidr": "net", "network": "net", "domain": "domain", "url": "url",
    "asn": "asn", "md5": "md5", "sha1": "sha1", "sha256": "sha256", "file_hash": "file_hash",
    "hash": "file_hash", "ja3": "ja3", "ja3s": "ja3", "ja4": "tls", "ja4s": "tls",
    "tls_fingerprint": "tls",
}
COLUMNS = ("indicator", "threat_level", "description", "type")  # without a header
SINKS = frozenset({"0.0.0.0", "127.0.0.1", "::", "::1"})  # hosts-file blocklists
MAX_LINE = 8192

_HEX = re.compile(r"[0-9a-f]+")
_JA4 = re.compile(r"[tqd][0-9a-z]{5,9}_[0-9a-f]{4,12}_[0-9a-f]{12}")
# Dotted names whose last label has a letter (so that no address is a domain).
_DOMAIN = re.compile(r"(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)+"
                     r"(?=[a-z0-9-]*[a-z])[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ASN = re.compile(r"as[n]?\s*(\d{1,10})")
_SCHEMES = ("http://", "https://", "hxxp://", "hxxps://")
_DEFAULT_PORT = {"http": ":80", "https": ":443"}

Key = int | str | tuple[int, int]


class FeedError(ValueError):
    """A line that cannot be used; the message says why (the caller adds file and line)."""


class Row(NamedTuple):
    """One data line: the indicator and what the line says about it (None: not given)."""

    indicator: str
    threat_level: str | None = None
    description: str | None = None
    type: str | None = None


# Column index of indicator, threat_level, description and type in a CSV line (-1: absent).
Positions = tuple[int, int, int, int]
POSITIONS: Positions = (0, 1, 2, 3)


def positions(columns: tuple[str, ...]) -> Positions:
    i, level, about, kind = (columns.index(n) if n in columns else -1 for n in COLUMNS)
    return i, level, about, kind


def split_line(raw: str, where: Positions = POSITIONS) -> Row | None:
    """The indicator and fields of one line, None for blank and comment lines."""
    line = raw.strip()
    if not line or line[0] in "#;":
        return None
    if len(line) > MAX_LINE:
        raise FeedError(f"line longer than {MAX_LINE} characters")
    if "," not in line:
        tokens = line.split()
        if len(tokens) > 1 and tokens[0] in SINKS:
            return Row(tokens[1])
        return Row(tokens[0])
    fields = next(csv.reader([line])) if '"' in line else line.split(",")
    count = len(fields)
    i, level, about, kind = where
    indicator = fields[i].strip() if 0 <= i < count else ""
    if not indicator:
        raise FeedError("empty indicator")
    return Row(indicator,
               (fields[level].strip() or None) if 0 <= level < count else None,
               (fields[about].strip() or None) if 0 <= about < count else None,
               (fields[kind].strip() or None) if 0 <= kind < count else None)


def header_columns(raw: str) -> Positions | None:
    """Where the columns are, from a CSV header line (one naming an ``indicator`` column)."""
    line = raw.strip().lstrip("\ufeff").lstrip("#").strip()
    if "," not in line:
        return None
    names = tuple(f.strip().lower().replace(" ", "_") for f in next(csv.reader([line])))
    return positions(names) if "indicator" in names else None


def threat_level(text: str) -> str:
    level = text.strip().lower()
    if level not in LEVEL_RANK:
        raise FeedError(f"unknown threat level {text!r} (use {', '.join(LEVELS)})")
    return level


def parse_ip(text: str) -> tuple[int, int] | None:
    """(version, integer) of an address written in standard notation, else None."""
    try:
        if ":" in text:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except (OSError, ValueError):
        return None


# Traffic repeats the same addresses: cached. Loading a feed does not: it calls parse_ip.
ip_key = functools.lru_cache(maxsize=65536)(parse_ip)


def ip_text(version: int, value: int) -> str:
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


def network_key(text: str) -> tuple[int, int, int] | None:
    """(version, prefix length, network integer) of ``addr/len``; host bits are cleared."""
    addr, slash, length = text.partition("/")
    parsed = parse_ip(addr) if slash else None
    if parsed is None or not length.isdigit():
        return None
    version, value = parsed
    bits = 32 if version == 4 else 128
    plen = int(length)
    if plen > bits:
        return None
    return version, plen, (value >> (bits - plen)) << (bits - plen)


def normalize_domain(text: str) -> str | None:
    """Lower case, no trailing dot or leading wildcard; None unless it is a dotted name."""
    name = text.strip().lower().rstrip(".")
    if name.startswith("*."):
        name = name[2:]
    name = name.lstrip(".")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    if len(name) > 253 or _DOMAIN.fullmatch(name) is None:
        return None
    return name


def normalize_url(text: str, scheme: str = "") -> str | None:
    """``host[:port]/path[?query]`` with the host in lower case and no default port,
    fragment or trailing slash; the path keeps its case. None unless it is a URL."""
    url = text.strip()
    low = url[:8].lower()
    for prefix in _SCHEMES:
        if low.startswith(prefix):
            scheme = prefix[:-3].replace("hxxp", "http")
            url = url[len(prefix):]
            break
    else:
        if "://" in url:
            return None
    host, _, rest = url.partition("/")
    host = host.rpartition("@")[2].lower()
    port = _DEFAULT_PORT.get(scheme)
    if port and host.endswith(port):
        host = host[: -len(port)]
    host = host.rstrip(".")
    if not host or " " in host:
        return None
    path = "/" + rest.partition("#")[0]
    if len(path) > 1 and path.endswith("/") and "?" not in path:
        path = path.rstrip("/") or "/"
    return host + path


# Declared type -> inferred kinds it accepts.
_ALLOWED: dict[str, frozenset[str]] = {
    "ip": frozenset({"ip4", "ip6", "net4", "net6"}), "net": frozenset({"net4", "net6"}),
    "domain": frozenset({"domain"}), "url": frozenset({"url"}), "asn": frozenset({"asn"}),
    "md5": frozenset({"hash32"}), "sha1": frozenset({"file_hash"}),
    "sha256": frozenset({"file_hash"}), "file_hash": frozenset({"hash32", "file_hash"}),
    "ja3": frozenset({"hash32"}), "tls": frozenset({"hash32", "tls_fingerprint"}),
}
_DIGITS = {"sha1": 40, "sha256": 64}


def _infer(value: str) -> tuple[str, Key] | None:
    """Kind and key of an indicator from its form alone; cheap tests first."""
    low = value.lower()
    if len(low) in (32, 40, 64) and _HEX.fullmatch(low):
        return ("hash32" if len(low) == 32 else "file_hash"), low
    slash = "/" in low
    if not slash and (low[0].isdigit() or ":" in low):
        ip = parse_ip(low)
        if ip is not None:
            return f"ip{ip[0]}", ip[1]
    if slash and "://" not in low:
        net = network_key(low)
        if net is not None:
            version, plen, net_int = net
            if plen == (32 if version == 4 else 128):
                return f"ip{version}", net_int
            return f"net{version}", (plen, net_int)
    if slash:
        url = normalize_url(value)
        return None if url is None else ("url", url)
    if low.startswith("as"):
        match = _ASN.fullmatch(low)
        if match is not None and int(match.group(1)) < 2**32:
            return "asn", int(match.group(1))
    if "_" in low and _JA4.fullmatch(low):
        return "tls_fingerprint", low
    name = normalize_domain(value)
    return None if name is None else ("domain", name)


def classify(indicator: str, declared: str | None = None) -> tuple[str, Key]:
    """(kind, lookup key) of an indicator, inferred or checked against a declared type."""
    value = indicator.strip()
    found = _infer(value) if value else None
    if not declared:
        if found is None:
            raise FeedError(f"cannot tell what kind of indicator {indicator!r} is")
        return found
    want = DECLARED.get(declared.strip().lower())
    if want is None:
        raise FeedError(f"unknown type {declared!r} (use {', '.join(sorted(DECLARED))})")
    if want == "asn" and value.isdigit() and int(value) < 2**32:
        return "asn", int(value)
    if want == "url" and (found is None or found[0] != "url"):
        url = normalize_url(value)
        if url is not None and " " not in url:
            return "url", url
    if found is not None and found[0] in _ALLOWED[want]:
        kind, key = found
        if kind == "hash32":
            return ("file_hash" if want in ("md5", "file_hash") else "tls_fingerprint"), key
        if kind != "file_hash" or len(str(key)) == _DIGITS.get(want, len(str(key))):
            return kind, key
    raise FeedError(f"{indicator!r} is not a valid {declared}")
