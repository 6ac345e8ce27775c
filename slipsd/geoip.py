"""Country and autonomous system of an address, from MaxMind .mmdb files.

Both databases are optional: slips ships none (their licence forbids it), so
a missing file only turns its lookups off, with one warning. Lookups are
cached because the same few thousand public addresses recur in every window.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import maxminddb

from slipsd.netinfo import is_public

log = logging.getLogger(__name__)


def _open(path: str, what: str) -> Any:
    if not path:
        return None
    if not Path(path).is_file():
        log.warning("no %s database at %s: %s lookups are off", what, path, what)
        return None
    try:
        return maxminddb.open_database(path)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        log.warning("cannot read the %s database %s: %s; %s lookups are off",
                    what, path, exc, what)
        return None


class GeoIP:
    """Lookups of public addresses; private and invalid ones give None."""

    def __init__(self, country_database: str = "", asn_database: str = "") -> None:
        self.paths = {"country": country_database, "AS": asn_database}
        self._dbs: dict[str, Any] = {}  # opened on first use: most modules never look up
        # Per instance, so two databases never share cached answers.
        self._country_cached = functools.lru_cache(maxsize=65536)(self._country)
        self._asn_cached = functools.lru_cache(maxsize=65536)(self._asn)

    def _db(self, what: str) -> Any:
        if what not in self._dbs:
            self._dbs[what] = _open(self.paths[what], what)
        return self._dbs[what]

    def country(self, ip: str) -> str | None:
        """ISO 3166 code of the country the address is registered in."""
        return self._country_cached(ip)

    def asn(self, ip: str) -> tuple[int, str] | None:
        """(AS number, organisation) announcing the address."""
        return self._asn_cached(ip)

    def _country(self, ip: str) -> str | None:
        record = self._record(self._db("country"), ip)
        country = record.get("country") or record.get("registered_country") or {}
        code = country.get("iso_code") if isinstance(country, dict) else None
        return str(code) if code else None

    def _asn(self, ip: str) -> tuple[int, str] | None:
        record = self._record(self._db("AS"), ip)
        number = record.get("autonomous_system_number")
        if not isinstance(number, int):
            return None
        return number, str(record.get("autonomous_system_organization") or "")

    @staticmethod
    def _record(db: Any, ip: str) -> dict[str, Any]:
        if db is None or not is_public(ip):
            return {}
        try:
            record = db.get(ip)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def close(self) -> None:
        for db in self._dbs.values():
            if db is not None:
                db.close()
        self._dbs.clear()


NO_GEOIP = GeoIP()
