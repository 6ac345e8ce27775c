"""Cached answers of a threat-intelligence index for what traffic repeats all day."""

from __future__ import annotations

from typing import Any

from slipsd.intel import Index, Match
from slipsd.intel._format import ip_key
from slipsd.netinfo import is_group, is_public

LOOKUPS_CAP = 50_000  # answers remembered per kind of lookup (then forgotten at once)
# What the tables' get() returns for a value never looked up. Handlers read the tables
# themselves first: a hit then costs a dict lookup instead of a method call.
MISSING: Any = object()


class Lookups:
    """The answers of one index for the addresses and names traffic repeats all day.

    Built anew when the index is swapped, so a cached answer is always the current
    index's; each table is emptied when it reaches LOOKUPS_CAP.
    """

    def __init__(self, index: Index) -> None:
        self.index = index
        self.has_ips = index.has_ips()
        self.has_domains = bool(index.domains)
        self.ips: dict[str, Match | None] = {}
        self.domains: dict[str, Match | None] = {}
        self.answers: dict[str, Match | None] = {}

    def ip(self, ip: str) -> Match | None:
        """A listed address; a listed network holding it only if it is public (feeds
        that list bogon ranges, 10.0.0.0/8..., would otherwise flag every local flow)."""
        ips = self.ips
        if ip in ips:
            return ips[ip]
        if len(ips) >= LOOKUPS_CAP:
            ips.clear()
        found = ips[ip] = (None if not ip or is_group(ip)
                           else self.index.ip(ip, networks=is_public(ip)))
        return found

    def domain(self, name: str) -> Match | None:
        domains = self.domains
        if name in domains:
            return domains[name]
        if len(domains) >= LOOKUPS_CAP:
            domains.clear()
        found = domains[name] = self.index.domain(name)
        return found

    def answer(self, answer: str) -> Match | None:
        """A DNS answer: an address, or a name (CNAME, MX...) when it looks like one."""
        answers = self.answers
        if answer in answers:
            return answers[answer]
        if len(answers) >= LOOKUPS_CAP:
            answers.clear()
        found: Match | None = None
        if ip_key(answer) is not None:
            found = self.ip(answer) if self.has_ips else None
        elif self.has_domains and "." in answer and " " not in answer:
            found = self.index.domain(answer)
        answers[answer] = found
        return found
