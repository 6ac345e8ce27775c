"""Lookup structures for indicators: O(1) per lookup, compact per indicator.

Every table maps a normalised key to a shared ``Source`` (feed, threat level,
description): one feed's million entries point at a handful of Source
objects instead of carrying a tuple each. Addresses and hashes are stored as
integers. Networks are kept per IP version and prefix length (at most 33 or
129 dict lookups, in practice a few); domains are matched by walking up their
labels, so a listed domain also covers its subdomains.
"""

from __future__ import annotations

from dataclasses import dataclass

from slipsd.intel._format import LEVEL_RANK, Key, ip_key, ip_text


@dataclass(frozen=True, slots=True)
class Source:
    """Where an indicator comes from and what it means; shared by many indicators."""

    feed: str
    threat_level: str
    description: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """A listed indicator that matched something seen in traffic."""

    kind: str  # ip, network, domain, url, asn, file_hash, tls_fingerprint
    indicator: str  # as listed (normalised): the network for a network match
    source: Source
    exact: bool  # False: the value is inside a listed network, below a listed domain...

    def listed_in(self) -> str:
        """``listed in <feed> (tags): <description>``, for evidence descriptions."""
        src = self.source
        tags = f" ({', '.join(src.tags)})" if src.tags else ""
        about = f": {src.description}" if src.description else ""
        return f"listed in {src.feed}{tags}{about}"


def _keep(table: dict[Key, Source], key: Key, source: Source) -> bool:
    """Store unless the key is already listed at the same or a higher threat level."""
    old = table.get(key)
    if old is not None and LEVEL_RANK[old.threat_level] >= LEVEL_RANK[source.threat_level]:
        return False
    table[key] = source
    return True


class Index:
    def __init__(self) -> None:
        self.ips: dict[int, dict[Key, Source]] = {4: {}, 6: {}}
        # version -> prefix length -> (network integer >> host bits) -> source
        self.nets: dict[int, dict[int, dict[Key, Source]]] = {4: {}, 6: {}}
        self._lengths: dict[int, tuple[int, ...]] = {4: (), 6: ()}  # longest first
        self.domains: dict[Key, Source] = {}
        self.urls: dict[Key, Source] = {}
        self.asns: dict[Key, Source] = {}
        self.hashes: dict[int, dict[Key, Source]] = {32: {}, 40: {}, 64: {}}  # by hex digits
        self.fingerprints: dict[Key, Source] = {}  # JA3/JA3S as integers, JA4 as text

    def add(self, kind: str, key: Key, source: Source) -> bool:
        """Add one classified indicator (see _format.classify); False if already listed."""
        if kind in ("ip4", "ip6"):
            assert isinstance(key, int)
            return _keep(self.ips[int(kind[2])], key, source)
        if kind in ("net4", "net6"):
            assert isinstance(key, tuple)
            version = int(kind[3])
            plen, net = key
            table = self.nets[version].get(plen)
            if table is None:
                table = self.nets[version][plen] = {}
                self._lengths[version] = tuple(sorted(self.nets[version], reverse=True))
            return _keep(table, net >> ((32 if version == 4 else 128) - plen), source)
        if kind == "domain":
            return _keep(self.domains, key, source)
        if kind == "url":
            return _keep(self.urls, key, source)
        if kind == "asn":
            return _keep(self.asns, key, source)
        assert isinstance(key, str)
        if kind == "file_hash":
            return _keep(self.hashes[len(key)], int(key, 16), source)
        if kind == "tls_fingerprint":
            return _keep(self.fingerprints, _fingerprint_key(key), source)
        if kind == "hash32":
            as_file = _keep(self.hashes[32], int(key, 16), source)
            return _keep(self.fingerprints, _fingerprint_key(key), source) or as_file
        raise ValueError(f"unknown indicator kind {kind!r}")

    def counts(self) -> dict[str, int]:
        return {
            "ip": len(self.ips[4]) + len(self.ips[6]),
            "network": sum(len(t) for v in (4, 6) for t in self.nets[v].values()),
            "domain": len(self.domains), "url": len(self.urls), "asn": len(self.asns),
            "file_hash": sum(len(t) for t in self.hashes.values()),
            "tls_fingerprint": len(self.fingerprints),
        }

    def __len__(self) -> int:
        return sum(self.counts().values())

    def has_ips(self) -> bool:
        return any(self.ips.values()) or any(self._lengths.values())

    # Lookups. Each takes the value as seen in traffic and returns None when unlisted.

    def ip(self, text: str, networks: bool = True) -> Match | None:
        """A listed address, else (with ``networks``) the longest listed network holding it."""
        parsed = ip_key(text)
        if parsed is None:
            return None
        version, value = parsed
        source = self.ips[version].get(value)
        if source is not None:
            return Match("ip", ip_text(version, value), source, True)
        if not networks:
            return None
        bits = 32 if version == 4 else 128
        tables = self.nets[version]
        for plen in self._lengths[version]:
            source = tables[plen].get(value >> (bits - plen))
            if source is not None:
                net = (value >> (bits - plen)) << (bits - plen)
                return Match("network", f"{ip_text(version, net)}/{plen}", source, False)
        return None

    def domain(self, name: str) -> Match | None:
        """A listed domain equal to ``name`` or a parent of it (its labels walked upwards)."""
        if not self.domains:
            return None
        name = name.lower().rstrip(".")
        current = name
        while True:
            source = self.domains.get(current)
            if source is not None:
                return Match("domain", current, source, current == name)
            dot = current.find(".")
            if dot < 0:
                return None
            current = current[dot + 1:]

    def url(self, normalised: str) -> Match | None:
        """A listed URL (see _format.normalize_url); one listed without the query
        string also matches, as not exact."""
        if not self.urls:
            return None
        source = self.urls.get(normalised)
        if source is not None:
            return Match("url", normalised, source, True)
        path, query, _ = normalised.partition("?")
        if query:
            source = self.urls.get(path.rstrip("/") if path.count("/") > 1 else path)
            if source is not None:
                return Match("url", path, source, False)
        return None

    def asn(self, number: int) -> Match | None:
        source = self.asns.get(number)
        return None if source is None else Match("asn", f"AS{number}", source, True)

    def file_hash(self, digest: str) -> Match | None:
        table = self.hashes.get(len(digest))
        if not table:
            return None
        try:
            source = table.get(int(digest, 16))
        except ValueError:
            return None
        return None if source is None else Match("file_hash", digest.lower(), source, True)

    def tls_fingerprint(self, fingerprint: str) -> Match | None:
        if not self.fingerprints:
            return None
        value = fingerprint.strip().lower()
        try:
            source = self.fingerprints.get(_fingerprint_key(value))
        except ValueError:
            return None
        return None if source is None else Match("tls_fingerprint", value, source, True)


def _fingerprint_key(value: str) -> Key:
    # JA3/JA3S are MD5 digests: kept as integers; JA4 fingerprints as text.
    return int(value, 16) if len(value) == 32 and "_" not in value else value
