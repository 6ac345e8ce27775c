"""Which well-known organisation a certificate, a name or a server belongs to.

The same few certificates and servers answer most connections, so each lookup in
slipsd.orgs is remembered by its argument.
"""

from __future__ import annotations

from slipsd.geoip import GeoIP
from slipsd.orgs import Organizations

from .certs import common_names, looks_like_hostname, memo

LOOKUPS_CAP = 4096  # arguments remembered per kind of lookup


class Owners:
    def __init__(self, orgs: Organizations) -> None:
        self.orgs = orgs
        self.named_in = memo(LOOKUPS_CAP, orgs.named_in)  # organisation a DN text names
        self.of_ip = memo(LOOKUPS_CAP, orgs.owner_of_ip)
        self.of_domain = memo(LOOKUPS_CAP, orgs.owner_of_domain)

    def of_server(self, daddr: str, geoip: GeoIP) -> frozenset[str]:
        """The organisations owning the server's address or its AS."""
        asn = geoip.asn(daddr)
        owners = {self.of_ip(daddr), self.orgs.asn_owner(asn[0]) if asn else None}
        return frozenset(o for o in owners if o)

    def of_subject(self, subject: str) -> list[str]:
        """Organisations a certificate subject names, or whose domains its CNs are in."""
        found = [self.named_in(subject)]
        found += [self.of_domain(cn.removeprefix("*.")) for cn in common_names(subject)
                  if looks_like_hostname(cn)]
        return list(dict.fromkeys(org for org in found if org))
