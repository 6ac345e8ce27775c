"""The whitelist: traffic and evidence slips ignores (format: docs/whitelist.md).

Lines ``type, value, direction, what`` (parsed in slipsd/whitelist_entries.py). The
ingest drops whitelisted records before profiling them (``drops_event``), the evidence
handler drops whitelisted evidence before storing it (``drops_evidence``). A bad line is
reported with file and line and skipped; the rest of the file applies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from slipsd.netinfo import parse_ip
from slipsd.orgs import Organizations, PrefixMap, domain_parents, load_organizations
from slipsd.whitelist_entries import MAC_FORM, Entry
from slipsd.whitelist_entries import parse_line as parse_line

log = logging.getLogger(__name__)

MAX_RESOLVED = 10_000  # addresses remembered from DNS answers for whitelisted domains
IP_CACHE_SIZE = 65_536  # addresses whose verdict is remembered, per side
ERRORS_KEPT = 20  # bad lines listed in the run summary (all are counted)

# Event keys holding each side's MAC (conn: smac/dmac, arp: src_mac/dst_mac, dhcp: mac).
_SRC_MACS = ("smac", "src_mac", "mac")
_DST_MACS = ("dmac", "dst_mac")
# Event keys naming the server's domain, per channel.
_DOMAIN_KEYS = {"new_dns": "query", "new_http": "host", "new_ssl": "server_name"}


class AsnLookup(Protocol):
    def asn(self, ip: str) -> tuple[int, str] | None: ...


@dataclass
class _Side:
    """What is whitelisted on one side (source or destination) for one purpose."""

    nets: PrefixMap = field(default_factory=PrefixMap)
    domains: set[str] = field(default_factory=set)
    asns: set[int] = field(default_factory=set)
    macs: set[str] = field(default_factory=set)
    _ip_cache: dict[str, bool] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (len(self.nets) or self.domains or self.asns or self.macs)

    def add(self, entry: Entry, orgs: Organizations, asn_lookup: bool) -> None:
        if entry.kind in ("ip", "network"):
            self.nets.add(ipaddress.ip_network(entry.value, strict=False), entry.value)
        elif entry.kind == "domain":
            self.domains.add(entry.value)
        elif entry.kind == "mac":
            self.macs.add(entry.value)
        else:
            org = orgs.get(entry.value)
            assert org is not None  # checked when the line was parsed
            for net in org.networks:
                self.nets.add(net, entry.value)
            self.domains.update(org.domains)
            if asn_lookup:
                self.asns.update(org.asns)

    def has_ip(self, ip: str, geoip: AsnLookup | None) -> bool:
        # The same addresses recur all day: remember answers, within a bound.
        hit = self._ip_cache.get(ip)
        if hit is None:
            if len(self._ip_cache) >= IP_CACHE_SIZE:
                self._ip_cache.clear()
            hit = self._ip_cache[ip] = self._lookup_ip(ip, geoip)
        return hit

    def _lookup_ip(self, ip: str, geoip: AsnLookup | None) -> bool:
        if not ip:
            return False
        if self.nets.get(ip) is not None:
            return True
        if self.asns and geoip is not None:
            found = geoip.asn(ip)
            return found is not None and found[0] in self.asns
        return False

    def has_domain(self, name: str) -> bool:
        return bool(self.domains) and any(d in self.domains for d in domain_parents(name))

    def has_mac(self, mac: Any) -> bool:
        return bool(self.macs) and isinstance(mac, str) and mac.lower() in self.macs


class Whitelist:
    def __init__(self, entries: Iterable[Entry] = (), *, orgs: Organizations | None = None,
                 geoip: AsnLookup | None = None, path: str = "",
                 errors: Iterable[str] = (), bad_lines: int = 0) -> None:
        self.entries = list(entries)
        self.path = path
        self.errors = list(errors)
        self.bad_lines = bad_lines
        self._geoip = geoip
        orgs = orgs if orgs is not None else load_organizations()
        # [flows src, flows dst, evidence src, evidence dst]
        self._sides = [_Side() for _ in range(4)]
        for entry in self.entries:
            for i, wanted in enumerate((entry.flows and entry.src, entry.flows and entry.dst,
                                        entry.evidence and entry.src,
                                        entry.evidence and entry.dst)):
                if wanted:
                    self._sides[i].add(entry, orgs, geoip is not None)
        self._flow_src, self._flow_dst, self._ev_src, self._ev_dst = self._sides
        self.filters_flows = not (self._flow_src.empty and self._flow_dst.empty)
        self.filters_evidence = not (self._ev_src.empty and self._ev_dst.empty)
        self._resolves = bool(self._flow_src.domains or self._flow_dst.domains)
        # Address -> (src, dst): answers of DNS queries for whitelisted domains, oldest first.
        self._resolved: OrderedDict[str, tuple[bool, bool]] = OrderedDict()

    @property
    def empty(self) -> bool:
        return not (self.filters_flows or self.filters_evidence)

    def info(self) -> dict[str, Any]:
        """For the run's metadata and summary."""
        return {"file": self.path, "entries": len(self.entries), "bad_lines": self.bad_lines,
                "errors": self.errors[:ERRORS_KEPT],
                "asn_matching": any(side.asns for side in self._sides)}

    # -- traffic -----------------------------------------------------------------

    def drops_event(self, channel: str, event: Mapping[str, Any]) -> bool:
        """True when this record is whitelisted traffic (and learns from DNS answers)."""
        if not self.filters_flows:
            return False
        src, dst = self._flow_src, self._flow_dst
        saddr, daddr = event.get("saddr") or "", event.get("daddr") or ""
        if src.has_ip(saddr, self._geoip) or dst.has_ip(daddr, self._geoip):
            return True
        if self._resolved:
            sides = self._resolved.get(daddr)
            if sides is not None and sides[1]:
                return True
            sides = self._resolved.get(saddr)
            if sides is not None and sides[0]:
                return True
        if src.macs and any(src.has_mac(event.get(k)) for k in _SRC_MACS):
            return True
        if dst.macs and any(dst.has_mac(event.get(k)) for k in _DST_MACS):
            return True
        key = _DOMAIN_KEYS.get(channel)
        if key is None or not self._resolves:
            return False
        name = event.get(key)
        if not isinstance(name, str) or not name:
            return False
        if channel == "new_http":
            name = _without_port(name)
        # The domain names the server: a destination, or the source of its answers.
        as_src, as_dst = src.has_domain(name), dst.has_domain(name)
        if channel == "new_dns" and (as_src or as_dst):
            self._remember(event.get("answers"), as_src, as_dst)
        return as_dst

    def _remember(self, answers: Any, as_src: bool, as_dst: bool) -> None:
        if not isinstance(answers, list):
            return
        for answer in answers:
            if not isinstance(answer, str) or parse_ip(answer) is None:
                continue  # CNAMEs, TXT records
            old = self._resolved.pop(answer, (False, False))
            self._resolved[answer] = (old[0] or as_src, old[1] or as_dst)
            if len(self._resolved) > MAX_RESOLVED:
                self._resolved.popitem(last=False)

    # -- evidence ------------------------------------------------------------------

    def drops_evidence(self, evidence: Mapping[str, Any]) -> bool:
        """True when the evidence's attacker (src side) or victim (dst side) is whitelisted."""
        if not self.filters_evidence:
            return False
        return (self._matches(self._ev_src, str(evidence.get("attacker") or ""))
                or self._matches(self._ev_dst, str(evidence.get("victim") or "")))

    def _matches(self, side: _Side, value: str) -> bool:
        if not value:
            return False
        if parse_ip(value) is not None:
            return side.has_ip(value, self._geoip)
        low = value.lower()
        if MAC_FORM.match(low):
            return side.has_mac(low.replace("-", ":"))
        return side.has_domain(_without_port(low))


def _without_port(host: str) -> str:
    # "example.com:8080" -> "example.com"; bracketed or bare IPv6 stays as it is.
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host


def read_whitelist(path: str, *, orgs: Organizations | None = None,
                   geoip: AsnLookup | None = None) -> Whitelist:
    """The whitelist in ``path``; bad lines are logged, listed in ``errors`` and skipped.

    A file that cannot be read at all gives an empty whitelist with that one
    error: the configuration check already refused a missing file, so this is
    a file removed or broken since, and the run goes on without it.
    """
    orgs = orgs if orgs is not None else load_organizations()
    entries: list[Entry] = []
    errors: list[str] = []
    bad = 0
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        message = f"{path}: cannot read the whitelist: {exc.strerror or exc}"
        log.error("%s", message)
        return Whitelist(orgs=orgs, path=path, errors=[message], bad_lines=1)
    for number, line in enumerate(lines, 1):
        try:
            entry = parse_line(line, orgs)
        except ValueError as exc:
            bad += 1
            errors.append(f"{path}:{number}: {exc}")
            log.warning("whitelist %s:%d: %s (line skipped)", path, number, exc)
            continue
        if entry is not None:
            entries.append(dataclasses.replace(entry, line=number))
    return Whitelist(entries, orgs=orgs, geoip=geoip, path=path, errors=errors, bad_lines=bad)


def load_whitelist(path: str, asn_database: str = "") -> Whitelist | None:
    """What a run's child uses: ``None`` when no whitelist is configured.

    Organisations' AS numbers are matched only when the AS database exists
    (``[geoip] asn_database``); their networks and domains always are.
    """
    if not path:
        return None
    geoip: AsnLookup | None = None
    if asn_database and Path(asn_database).is_file():
        from slipsd.geoip import GeoIP

        geoip = GeoIP(asn_database=asn_database)
    return read_whitelist(path, geoip=geoip)


def fingerprint(path: str) -> str:
    """The file's content digest ("" for none or unreadable): a reload compares it to tell
    whether the live run's ingest and evidence handler must restart."""
    if not path:
        return ""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""
