"""Well-known organisations: their domains, autonomous systems, networks and names.

The shipped data (``etc/organizations/<name>.txt``) is approximate and written
from public knowledge: enough to recognise the big services a network talks to
all day, never a complete inventory. Each file holds lines ``key: v1, v2, ...``
(keys ``alias``, ``asn``, ``domain``, ``network``, each repeatable); ``#``
starts a comment. The organisation's name is the file's stem.

Lookups are meant for per-flow use: an address costs one dict lookup per
distinct prefix length (``PrefixMap``), a domain one per label.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from slipsd.netinfo import Network, parse_ip, shipped_data

KEYS = ("alias", "asn", "domain", "network")


class OrgDataError(ValueError):
    """A bad line of an organisation file, naming the file and line."""


class PrefixMap:
    """Networks -> a value, looked up by address in O(distinct prefix lengths).

    Networks are kept per IP version and prefix length as a dict from the
    network's integer to the value; the longest matching prefix wins.
    """

    def __init__(self) -> None:
        self._tables: dict[int, dict[int, dict[int, str]]] = {4: {}, 6: {}}
        self._lengths: dict[int, list[int]] = {4: [], 6: []}

    def add(self, network: Network, value: str) -> None:
        by_length = self._tables[network.version]
        table = by_length.get(network.prefixlen)
        if table is None:
            table = by_length[network.prefixlen] = {}
            self._lengths[network.version] = sorted(by_length, reverse=True)
        table.setdefault(int(network.network_address), value)

    def __len__(self) -> int:
        return sum(len(t) for by_len in self._tables.values() for t in by_len.values())

    def get(self, ip: str) -> str | None:
        address = parse_ip(ip)
        if address is None:
            return None
        version = address.version
        bits = 32 if version == 4 else 128
        number = int(address)
        tables = self._tables[version]
        for length in self._lengths[version]:
            mask = ((1 << length) - 1) << (bits - length) if length else 0
            hit = tables[length].get(number & mask)
            if hit is not None:
                return hit
        return None


def domain_parents(name: str) -> Iterator[str]:
    """``a.b.example.com`` -> itself, ``b.example.com``, ``example.com`` (not ``com``)."""
    labels = name.strip().rstrip(".").lower().split(".")
    for i in range(len(labels) - 1):
        yield ".".join(labels[i:])


# Legal forms dropped from the end of a name before comparing, so that
# "Google LLC", "Google Inc." and "Google" are one name.
_LEGAL_FORMS = frozenset({
    "inc", "incorporated", "llc", "l l c", "ltd", "limited", "corp", "corporation", "co",
    "company", "gmbh", "ag", "sa", "sas", "plc", "bv", "b v", "pty", "ab", "oy", "kk",
})
# An attribute ``KEY=`` at the start of a DN or after a separator (, ; / +), unescaped.
_DN_KEY = re.compile(r"(?:^|(?<!\\)[,;/+])\s*([A-Za-z][A-Za-z0-9.]*)\s*=")
_NAME_ATTRS = frozenset({"o", "ou", "cn", "organizationname", "organizationalunitname",
                         "commonname"})


def normalize_name(text: str) -> str:
    """Case-folded words of a name without punctuation and trailing legal forms."""
    words = re.sub(r"[^\w]+", " ", text.casefold()).split()
    while words:
        # Two-word forms first ("l l c"), then one word.
        if len(words) >= 3 and " ".join(words[-3:]) in _LEGAL_FORMS:
            words = words[:-3]
        elif len(words) >= 2 and " ".join(words[-2:]) in _LEGAL_FORMS:
            words = words[:-2]
        elif words[-1] in _LEGAL_FORMS and len(words) > 1:
            words = words[:-1]
        else:
            break
    return " ".join(words)


def name_values(text: str) -> list[str]:
    """The O, OU and CN values of a distinguished name; a text without ``=`` is one value.

    Accepts Zeek's ``CN=x,O=y``, Suricata's ``C=US, O=y`` and OpenSSL's ``/O=y/CN=x``,
    with backslash-escaped separators inside values.
    """
    marks = list(_DN_KEY.finditer(text))
    if not marks:
        return [text] if text.strip() else []
    values = []
    for i, mark in enumerate(marks):
        if mark.group(1).lower() not in _NAME_ATTRS:
            continue
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        value = re.sub(r"\\(.)", r"\1", text[mark.end():end]).strip()
        if value:
            values.append(value)
    return values


@dataclass
class Organization:
    name: str
    aliases: list[str] = field(default_factory=list)
    asns: set[int] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)
    networks: list[Network] = field(default_factory=list)


class Organizations:
    def __init__(self, orgs: Iterable[Organization] = ()) -> None:
        self._orgs: dict[str, Organization] = {}
        self._by_net = PrefixMap()
        self._by_domain: dict[str, str] = {}
        self._by_asn: dict[int, str] = {}
        self._by_name: dict[str, str] = {}
        for org in orgs:
            self.add(org)

    def add(self, org: Organization) -> None:
        self._orgs[org.name] = org
        for net in org.networks:
            self._by_net.add(net, org.name)
        for domain in org.domains:
            self._by_domain.setdefault(domain, org.name)
        for asn in org.asns:
            self._by_asn.setdefault(asn, org.name)
        for alias in [org.name, *org.aliases]:
            key = normalize_name(alias)
            if key:
                self._by_name.setdefault(key, org.name)

    def names(self) -> list[str]:
        return sorted(self._orgs)

    def get(self, name: str) -> Organization | None:
        return self._orgs.get(name.strip().lower())

    def owner_of_ip(self, ip: str) -> str | None:
        return self._by_net.get(ip)

    def owner_of_domain(self, name: str) -> str | None:
        for candidate in domain_parents(name):
            owner = self._by_domain.get(candidate)
            if owner is not None:
                return owner
        return None

    def asn_owner(self, asn: int) -> str | None:
        return self._by_asn.get(asn)

    def named_in(self, text: str) -> str | None:
        """The organisation one of whose names is a whole O, OU or CN value of ``text``.

        Values are compared whole, after case-folding, dropping punctuation and
        trailing legal forms: "O=Google LLC" and "O=Google Trust Services LLC"
        are google; "O=Googleplex Bakery" and "O=Google Bakery" are nobody (a
        word match would take the latter), "CN=*.google.com" is not a name.
        """
        for value in name_values(text):
            owner = self._by_name.get(normalize_name(value))
            if owner is not None:
                return owner
        return None


def parse_organization(path: Path) -> Organization:
    """One organisation file; raises OrgDataError naming the file and line."""
    org = Organization(path.stem.lower())
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            key, sep, rest = line.partition(":")
            key = key.strip().lower()
            if not sep or key not in KEYS:
                raise OrgDataError(f"{path}:{number}: expected '<{'|'.join(KEYS)}>: values'")
            for item in (v.strip() for v in rest.split(",")):
                if not item:
                    continue
                try:
                    _add_item(org, key, item)
                except ValueError as exc:
                    raise OrgDataError(f"{path}:{number}: {key} {item!r}: {exc}") from None
    return org


def _add_item(org: Organization, key: str, item: str) -> None:
    if key == "alias":
        org.aliases.append(item)
    elif key == "asn":
        org.asns.add(int(item.upper().removeprefix("AS")))
    elif key == "domain":
        domain = item.lower().rstrip(".")
        if "." not in domain:
            raise ValueError("a domain needs at least two labels")
        org.domains.add(domain)
    else:
        org.networks.append(ipaddress.ip_network(item, strict=False))


@functools.lru_cache(maxsize=4)
def load_organizations(folder: str = "") -> Organizations:
    """Every ``*.txt`` of ``folder`` (default: the shipped ``organizations`` data)."""
    root = Path(folder) if folder else shipped_data("organizations")
    paths = sorted(root.glob("*.txt")) if root.is_dir() else []
    return Organizations(parse_organization(p) for p in paths)
