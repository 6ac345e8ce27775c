"""LONG_CONNECTION: a connection that stays open far longer than usual.

Long-lived sessions to one host are typical of remote-control channels and
tunnels; multicast and broadcast streams are left out because they are long
by nature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slipsd.events import Flow
from slipsd.module import Module, Option
from slipsd.netinfo import is_group


def _human(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


class LongConnection(Module):
    name = "long_connection"
    description = "Connections lasting longer than a threshold (LONG_CONNECTION)"
    channels = ("new_flow",)
    evidence_types = ("LONG_CONNECTION",)
    options = {
        "threshold": Option(float, 1500.0, "seconds a connection must last to be reported"),
    }

    def setup(self, config: Mapping[str, Any]) -> None:
        self.threshold = float(config["threshold"])

    def on_new_flow(self, flow: Flow) -> None:
        duration = flow["duration"]
        if duration <= self.threshold or is_group(flow["daddr"]):
            return
        # Twice the threshold is unusual enough to be sure of; just over it less so.
        confidence = min(1.0, 0.5 + 0.5 * (duration - self.threshold) / self.threshold)
        self.ctx.evidence(
            "LONG_CONNECTION",
            attacker=flow["saddr"],
            victim=flow["daddr"],
            threat_level="low",
            confidence=round(confidence, 3),
            description=(
                f"connection from {flow['saddr']} to {flow['daddr']}:{flow['dport']}/"
                f"{flow['proto']} lasted {_human(duration)} "
                f"(threshold {_human(self.threshold)})"
            ),
            ts=flow["ts"],
            tw=flow["tw"],
            profile=flow["profile"],
            uids=(flow["uid"],),
        )

