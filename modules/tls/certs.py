"""Certificate facts from Zeek's ssl.log and x509.log: names, distinguished names, caches."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from slipsd.netinfo import parse_ip
from slipsd.orgs import normalize_name

K = TypeVar("K")
V = TypeVar("V")

# OpenSSL says "self signed certificate" (1.x) or "self-signed certificate" (3.x); the
# "... in certificate chain" variant means the chain ends in an untrusted self-signed root.
_SELF_SIGNED = re.compile(r"self[- ]signed", re.IGNORECASE)
_IN_CHAIN = re.compile(r"in certificate chain", re.IGNORECASE)
_HOSTNAME = re.compile(r"^(\*|[a-z0-9_*-]+)(\.[a-z0-9_-]+)+$")


@dataclass(frozen=True, slots=True)
class Cert:
    """What x509.log tells about one certificate."""

    subject: str
    issuer: str
    sans: tuple[str, ...]  # DNS names, lower case
    is_ca: bool | None


def cert_from_x509(event: Mapping[str, Any]) -> tuple[str, Cert] | None:
    """(id, certificate) of a new_x509 event; the id is what ssl.log's chain lists."""
    ident = event.get("fingerprint") or event.get("id")
    if not isinstance(ident, str) or not ident:
        return None
    sans = event.get("san_dns")
    names = tuple(n.lower().rstrip(".") for n in sans if isinstance(n, str)) \
        if isinstance(sans, list) else ()
    is_ca = event.get("basic_constraints_ca")
    return ident, Cert(
        subject=_text(event.get("certificate_subject")),
        issuer=_text(event.get("certificate_issuer")),
        sans=names,
        is_ca=is_ca if isinstance(is_ca, bool) else None,
    )


def leaf_id(event: Mapping[str, Any]) -> str:
    """The server's own certificate in an ssl event: the first of its chain ("" if none)."""
    for key in ("cert_chain_fps", "cert_chain_fuids"):
        chain = event.get(key)
        if isinstance(chain, list) and chain and isinstance(chain[0], str):
            return chain[0]
    return ""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_dn(dn: str) -> list[tuple[str, str]]:
    """'CN=a,O=Foo\\, Inc.,C=US' -> [('CN', 'a'), ('O', 'Foo, Inc.'), ('C', 'US')]."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in dn:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",+":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    out = []
    for part in parts:
        attr, sep, value = part.partition("=")
        if sep:
            out.append((attr.strip().upper(), value.strip()))
    return out


def common_names(dn: str) -> list[str]:
    return [value.lower().rstrip(".") for attr, value in parse_dn(dn) if attr == "CN" and value]


def looks_like_hostname(name: str) -> bool:
    return bool(_HOSTNAME.match(name)) and parse_ip(name) is None


def covers(pattern: str, host: str) -> bool:
    """Whether a certificate name covers a host name (both lower case, no final dot).

    A wildcard stands for exactly one whole left-most label: '*.example.com' covers
    'a.example.com' but neither 'a.b.example.com' nor 'example.com'; 'w*.example.com'
    covers 'www.example.com'. A wildcard over fewer than two fixed labels covers nothing.
    """
    if pattern == host:
        return True
    if "*" not in pattern:
        return False
    first, _, rest = pattern.partition(".")
    host_first, _, host_rest = host.partition(".")
    if "*" in rest or rest.count(".") < 1 or rest != host_rest or not host_first:
        return False
    regex = "".join(".*" if c == "*" else re.escape(c) for c in first)
    return re.fullmatch(regex, host_first) is not None


def any_covers(names: Iterable[str], host: str) -> bool:
    return any(covers(name, host) for name in names)


# Second-level labels under which country domains register names (example.co.uk).
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "gov", "ac", "edu", "ne", "or", "go"})


def base_domain(name: str) -> str:
    """An approximation of the registered domain: 'a.b.example.co.uk' -> 'example.co.uk'."""
    labels = name.removeprefix("*.").split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


def self_signed_status(status: str) -> str:
    """'leaf', 'chain' or '' from ssl.log's validation_status."""
    if not _SELF_SIGNED.search(status):
        return ""
    return "chain" if _IN_CHAIN.search(status) else "leaf"


def issued_by_public_ca(issuer: str, patterns: Iterable[str]) -> bool:
    """Whether the issuer is one of the configured public CAs run by a large company.

    A pattern 'CN=Microsoft Azure' matches a CN whose words start with those words,
    case, punctuation and legal forms aside ('Microsoft Azure RSA TLS Issuing CA 03';
    'O=Cloudflare' matches 'Cloudflare, Inc.').
    """
    rdns = [(attr, normalize_name(value)) for attr, value in parse_dn(issuer)]
    for pattern in patterns:
        attr, sep, value = pattern.partition("=")
        want = normalize_name(value)
        if not sep or not want:
            continue
        attr = attr.strip().upper()
        for got_attr, got in rdns:
            if got_attr == attr and (got == want or got.startswith(want + " ")):
                return True
    return False


class Lru(Generic[K, V]):
    """A dict that forgets its least recently used entries past ``cap``."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.cap:
            self._items.popitem(last=False)

    def __contains__(self, key: object) -> bool:
        return key in self._items


def memo(cap: int, func: Callable[[str], str | None]) -> Callable[[str], str | None]:
    """Cache a lookup by its argument (certificates and servers repeat a lot)."""
    cache: OrderedDict[str, str | None] = OrderedDict()

    def lookup(arg: str) -> str | None:
        if arg in cache:
            cache.move_to_end(arg)
            return cache[arg]
        value = cache[arg] = func(arg)
        if len(cache) > cap:
            cache.popitem(last=False)
        return value

    return lookup
