"""DNS_ARPA_SCAN: a burst of reverse lookups, then how far the sweep goes in the window.

A burst is counted per profile across windows (a sweep may straddle a boundary);
the levels after it are counted in the window's reverse names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from slipsd.modtools import powers

from .helpers import MAX_UIDS, NAMES_CAP, Burst, Window, listed


class ReverseLookups:
    def __init__(self, threshold: int, seconds: float, report: Callable[..., Any]) -> None:
        self.threshold = threshold
        self.seconds = seconds
        self.report = report  # the module context's evidence
        self.bursts: dict[str, Burst] = {}

    def lookup(self, event: Mapping[str, Any], name: str, win: Window) -> None:
        profile = event["profile"]
        burst = self.bursts.get(profile)
        if burst is None:
            burst = self.bursts[profile] = Burst(self.seconds, 10 * self.threshold)
        in_burst = burst.add(event["ts"], name)
        if name not in win.reverse and len(win.reverse) < NAMES_CAP:
            win.reverse[name] = event["uid"]
        saddr = event["saddr"]
        if not win.arpa_burst and in_burst >= self.threshold:
            win.arpa_burst = in_burst
            self.report(
                "DNS_ARPA_SCAN", attacker=saddr, victim="", threat_level="medium",
                confidence=0.5,
                description=(f"{saddr} made {in_burst} reverse DNS lookups within "
                             f"{self.seconds:g} s (e.g. {listed(burst.sample(5))})"),
                ts=event["ts"], tw=event["tw"], profile=profile,
                uids=tuple(list(win.reverse.values())[-MAX_UIDS:]),
                key=f"names>={self.threshold}",
            )
        if win.arpa_burst:
            # Levels counted from the burst on; a burst late in a busy window may pass
            # several at once, and only the highest is reported.
            count = len(win.reverse)
            level = max(powers(10 * self.threshold, win.arpa_counted, count), default=0)
            win.arpa_counted = count
            if level:
                self.report(
                    "DNS_ARPA_SCAN", attacker=saddr, victim="",
                    threat_level="high" if level >= 100 * self.threshold else "medium",
                    confidence=0.8,
                    description=(f"{saddr} made {level} reverse DNS lookups in this window "
                                 f"(the first burst: {win.arpa_burst} within "
                                 f"{self.seconds:g} s)"),
                    ts=event["ts"], tw=event["tw"], profile=profile,
                    uids=tuple(list(win.reverse.values())[-MAX_UIDS:]),
                    key=f"names>={level}",
                )

    def forget_before(self, ts: float) -> None:
        """Drop the bursts that ended more than their span before ``ts``."""
        for profile in [p for p, b in self.bursts.items() if b.last() < ts - self.seconds]:
            del self.bursts[profile]
