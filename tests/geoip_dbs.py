"""Small MaxMind databases written by the tests, in the layout of GeoLite2."""

from __future__ import annotations

from pathlib import Path

from mmdb_writer import MMDBWriter
from netaddr import IPSet

COUNTRIES = {"203.0.113.0/25": "NL", "198.51.100.0/24": "US", "2001:db8:1::/48": "CZ"}
ASNS = {"203.0.113.0/24": (64500, "Example Transit"), "198.51.100.0/24": (64501, "Doc Net")}


def write_geoip(folder: Path) -> tuple[Path, Path]:
    """Country and ASN databases for documentation ranges (which slips treats as
    public addresses); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    country = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
    for net, code in COUNTRIES.items():
        country.insert_network(IPSet([net]), {"country": {"iso_code": code}})
    asn = MMDBWriter(ip_version=6, database_type="GeoLite2-ASN", ipv4_compatible=True)
    for net, (number, org) in ASNS.items():
        asn.insert_network(IPSet([net]), {"autonomous_system_number": number,
                                          "autonomous_system_organization": org})
    paths = folder / "country.mmdb", folder / "asn.mmdb"
    country.to_db_file(str(paths[0]))
    asn.to_db_file(str(paths[1]))
    return paths
