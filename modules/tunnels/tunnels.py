"""GRE tunnels seen by Zeek (tunnel.log): each tunnel, and sources opening many of them.

GRE carries whole packets between two hosts, so traffic inside it escapes
whatever inspects the outer network; site links and PPTP VPNs use it
legitimately, hence the low weight of a single tunnel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from slipsd.events import TwClosed
from slipsd.module import Module, Option
from slipsd.netinfo import is_private

MAX_UIDS = 10
MAX_DESTINATIONS = 100_000  # distinct destinations counted per source and window
MAX_TUNNELS = 10  # GRE_TUNNEL evidence per source and window; GRE_SCAN covers the rest


@dataclass
class _Source:
    """GRE tunnels of one source in one window."""

    destinations: set[str] = field(default_factory=set)
    next_level: int = 0
    uids: list[str] = field(default_factory=list)


class Tunnels(Module):
    name = "tunnels"
    description = "GRE tunnels and sources opening GRE tunnels to many hosts (from tunnel.log)"
    channels = ("new_tunnel",)
    evidence_types = ("GRE_TUNNEL", "GRE_SCAN")
    options = {
        "scan_targets": Option(int, 5, "distinct GRE destinations of one source in one window "
                               "that make a GRE scan"),
    }

    def setup(self, config: Mapping[str, Any]) -> None:
        self.scan_targets = max(1, int(config["scan_targets"]))
        self.windows: dict[int, dict[str, _Source]] = {}

    def on_new_tunnel(self, ev: dict[str, Any]) -> None:
        kind = str(ev.get("tunnel_type") or "")
        saddr, daddr = ev["saddr"], ev["daddr"]
        if kind.rpartition("::")[2].upper() != "GRE" or not saddr or not daddr:
            return
        sources = self.windows.setdefault(ev["tw"], {})
        source = sources.get(saddr)
        if source is None:
            source = sources[saddr] = _Source(next_level=self.scan_targets)
        uid = ev.get("uid") or ""
        if uid and len(source.uids) < MAX_UIDS and uid not in source.uids:
            source.uids.append(uid)
        if daddr in source.destinations:
            return  # this pair is already reported in this window
        if len(source.destinations) < MAX_DESTINATIONS:
            source.destinations.add(daddr)
        count = len(source.destinations)
        if count <= MAX_TUNNELS:
            self._tunnel(ev, saddr, daddr, str(ev.get("action") or ""))
        if count >= source.next_level:
            level = source.next_level
            source.next_level *= 10
            self.ctx.evidence(
                "GRE_SCAN", attacker=saddr, victim="", threat_level="medium",
                confidence=0.7 if level == self.scan_targets else 0.9,
                description=(f"{saddr} opened GRE tunnels to {count} distinct hosts in this "
                             f"window (threshold {level}; latest {daddr})"),
                ts=ev["ts"], tw=ev["tw"], profile=ev["profile"], uids=tuple(source.uids),
                key=str(level),
            )

    def _tunnel(self, ev: dict[str, Any], saddr: str, daddr: str, action: str) -> None:
        internal = is_private(saddr) and is_private(daddr)
        uid = ev.get("uid") or ""
        self.ctx.evidence(
            "GRE_TUNNEL", attacker=saddr, victim=daddr,
            # Between two private hosts it is a site-internal link; across the internet it
            # can hide traffic from inspection (or be a PPTP VPN).
            threat_level="info" if internal else "low",
            confidence=1.0 if internal else 0.5,
            description=(f"GRE tunnel between {saddr} and {daddr}"
                         f"{' (both private)' if internal else ''}, first logged by Zeek "
                         f"as {action or 'a tunnel'}"),
            ts=ev["ts"], tw=ev["tw"], profile=ev["profile"], uids=(uid,) if uid else (),
            key="",
        )

    def on_tw_closed(self, event: TwClosed) -> None:
        for tw in [tw for tw in self.windows if tw <= event["tw"]]:
            del self.windows[tw]
